"""A real spool for the catalog and extract tests, made once per module.

Two veth pairs between a host namespace and a capture namespace (rx0: 192.0.2.0/24 and
2001:db8::/64, rx1: 198.51.100.0/24 and 2001:db8:1::/64); a real `sluice supervise` captures both
with one-second rotation while ping (v4, v6, full-size), UDP, HTTP over TCP (curl) and
802.1Q-tagged frames run on each, in three bursts about a second apart. The supervisor's hook
builds the catalog as the files close.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import catalog
from appliance.lab import netns
from tests.capture.conftest import Link, mixed_traffic
from tests.conftest import REPO, SLUICE_PCAP, require_tool, unique_name
from tests.supervisor.running import Supervise, write_config

PAIRS = (("tx0", "rx0", "192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"),
         ("tx1", "rx1", "198.51.100.1", "198.51.100.2", "2001:db8:1::1", "2001:db8:1::2"))


@dataclass
class Namespaces:
    h: str
    cap: str

    def link(self, k: int) -> Link:
        tx, rx, h_ip, cap_ip, h_ip6, cap_ip6 = PAIRS[k]
        return Link(h=self.h, cap=self.cap, tx=tx, rx=rx, h_ip=h_ip, cap_ip=cap_ip, h_ip6=h_ip6,
                    cap_ip6=cap_ip6)


@dataclass
class Spool:
    dir: Path
    ns: Namespaces
    supervisor_log: str

    def files(self) -> list[Path]:
        return sorted(p for p in (self.dir / "lab").rglob("*") if p.is_file() and not p.name.endswith(".part"))


def make_namespaces() -> Namespaces:
    h, cap = unique_name("scat-h-"), unique_name("scat-c-")
    netns.add_namespace(h)
    netns.add_namespace(cap)
    for tx, rx, h_ip, cap_ip, h_ip6, cap_ip6 in PAIRS:
        netns.add_veth(h, tx, cap, rx)
        for ns, ifname, ip4, ip6 in ((h, tx, h_ip, h_ip6), (cap, rx, cap_ip, cap_ip6)):
            netns.ip("-n", ns, "addr", "add", f"{ip4}/24", "dev", ifname)
            netns.ip("-n", ns, "addr", "add", f"{ip6}/64", "dev", ifname, "nodad")
            netns.ip("-n", ns, "link", "set", ifname, "up")
            netns.run_in(ns, ["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"])
            netns.run_in(ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.router_solicitations=0"])
    return Namespaces(h, cap)


def remove_namespaces(ns: Namespaces) -> None:
    for name in (ns.cap, ns.h):
        netns.kill_all_in(name)
        netns.delete_namespace(name)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[Namespaces]:
    ns = make_namespaces()
    try:
        yield ns
    finally:
        remove_namespaces(ns)


@pytest.fixture(scope="module")
def spool(namespaces: Namespaces) -> Iterator[Spool]:
    for tool in ("tcpdump", "mergecap", "editcap", "curl", "ping"):
        require_tool(tool)
    # Not under pytest's basetemp: a parallel pytest session may prune it while this module runs.
    with tempfile.TemporaryDirectory(prefix="sluice-catalog-", dir="/var/tmp") as d:
        yield _capture(namespaces, Path(d))


def _capture(namespaces: Namespaces, base: Path) -> Spool:
    sp = base / "spool"
    cfg = write_config(base / "sluice.toml", "rx0", sp, extra="[nic]\ntune = false\n")
    text = cfg.read_text().replace('interfaces = ["rx0"]', 'interfaces = ["rx0", "rx1"]\nrotate_seconds = 1')
    cfg.write_text(text)
    sup = Supervise(namespaces.cap, cfg, sp).start()
    try:
        for _burst in range(3):
            for k in (0, 1):
                mixed_traffic(namespaces.link(k))
            time.sleep(1.1)  # deliberate: rotate_seconds = 1, so each burst lands in files of its own
    finally:
        rc = sup.stop()
    assert rc == 0, sup.stderr()[-2000:]
    result = Spool(sp, namespaces, sup.stderr())
    files = result.files()
    assert len(files) >= 4, files
    return result


def sluice(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
           timeout: float = 120, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """`sluice ARGS`, its output captured (stdout: a file descriptor to write to instead)."""
    out = subprocess.PIPE if stdout is None else stdout
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], stdout=out, stderr=subprocess.PIPE,
                          cwd=REPO, input=stdin, env=env, timeout=timeout)


def kill_9_at(delays: tuple[float, ...], *args: str, after_each: Callable[[], None] | None = None) -> int:
    """`sluice ARGS` started once per delay and SIGKILLed that long after its start (unless it
    ended first); AFTER_EACH runs after each. Returns how many runs were killed."""
    kills = 0
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", *args], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)  # deliberate: each kill lands at another point of the run
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        if after_each is not None:
            after_each()
    return kills


def dump(path: Path | str, stdin: bytes | None = None) -> str:
    """Every packet with its ns timestamp and all its bytes, as tcpdump prints them."""
    proc = subprocess.run(["tcpdump", "-r", str(path), "-n", "-tt", "--time-stamp-precision=nano", "-xx"],
                          capture_output=True, input=stdin, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def stamps(path: Path | str) -> list[int]:
    """The ns timestamp of every packet of a capture file, in file order (from dump)."""
    return [int(ln.split()[0].replace(".", "")) for ln in dump(path).splitlines() if not ln.startswith("\t")]


def peer_pipeline(files: list[Path], from_ns: int, to_ns: int, bpf: str, work: Path) -> Path:
    """mergecap of the files, then editcap -A/-B, then tcpdump -r -w with the filter (ns kept)."""
    merged, cut, out = work / "peer-merged.pcapng", work / "peer-cut.pcapng", work / "peer.pcap"
    subprocess.run(["mergecap", "-w", str(merged), *map(str, files)], check=True, capture_output=True)
    subprocess.run(["editcap", "-A", f"{from_ns // 10**9}.{from_ns % 10**9:09d}",
                    "-B", f"{to_ns // 10**9}.{to_ns % 10**9:09d}", str(merged), str(cut)],
                   check=True, capture_output=True)
    argv = ["tcpdump", "-r", str(cut), "-w", str(out), "--time-stamp-precision=nano"]
    subprocess.run(argv + ([bpf] if bpf else []), check=True, capture_output=True)
    return out


def rows(spool_dir: Path) -> list[dict]:
    db = catalog.connect(spool_dir, readonly=True)
    try:
        return [catalog.row_dict(r) for r in db.execute("SELECT * FROM files ORDER BY path")]
    finally:
        db.close()


def copy_spool(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


__all__ = ["SLUICE_PCAP", "Namespaces", "Spool", "copy_spool", "dump", "make_namespaces", "peer_pipeline",
           "remove_namespaces", "rows", "sluice"]
