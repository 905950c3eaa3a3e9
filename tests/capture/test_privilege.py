"""Least privilege (issue 17): the writer opens its sockets and rings, then runs as an unprivileged
user with no capability under a seccomp allow-list, and still captures; a forbidden system call
kills only the writer, which the supervisor reports and restarts; files 0640 and folders 0750 of
the readers' group. Real writers on real veths, real traffic, /proc read as the kernel reports."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.journal import read_events
from appliance.lab import netns
from tests.capture.conftest import NATIVE, mixed_traffic, start_writer
from tests.supervisor.running import Supervise, capture_files, write_config
from tests.supervisor.test_supervise_crash import SENDER, numbers

pytestmark = [pytest.mark.root, pytest.mark.netns]

FORBIDDEN = NATIVE / "build" / "test-lib" / "libforbidden.so"
USER, GROUP = "nobody", "nogroup"  # present on every Debian system
NO_CAPS = "0000000000000000"


@pytest.fixture
def spool_root() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp_path is root's 0700)."""
    root = Path(tempfile.mkdtemp(prefix="sluice-priv-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def writable_by_user(path: Path) -> Path:
    path.mkdir(mode=0o750)
    os.chown(path, pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid)
    return path


def proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def assert_unprivileged(pid: int) -> None:
    st = proc_status(pid)
    assert st["Name"] == "sluice-capture", st["Name"]
    uid, gid = pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid
    assert st["Uid"].split() == [str(uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(gid)] * 4, st["Gid"]
    assert st["Groups"].split() == [str(grp.getgrnam(GROUP).gr_gid)], st["Groups"]
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert st[caps] == NO_CAPS, (caps, st[caps])
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2", "no seccomp filter"  # 2 = SECCOMP_MODE_FILTER


def assert_readers_only(files: list[Path]) -> None:
    gid = grp.getgrnam(GROUP).gr_gid
    assert files
    for f in files:
        st = f.stat()
        assert stat.S_IMODE(st.st_mode) == 0o640, (f, oct(st.st_mode))
        assert st.st_gid == gid and st.st_uid == pwd.getpwnam(USER).pw_uid, f
        d = f.parent.stat()
        assert stat.S_IMODE(d.st_mode) == 0o750 and d.st_gid == gid, (f.parent, oct(d.st_mode))


def test_the_writer_drops_to_a_user_without_capabilities_under_seccomp_and_captures(
        capture_binary, link, spool_root: Path) -> None:  # noqa: ANN001
    out = writable_by_user(spool_root / "out")
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(out), "--date-dirs", "--user", USER,
                                                "--group", GROUP])
    try:
        w.wait_ready()
        assert_unprivileged(w.proc.pid)
        mixed_traffic(link)
        # a numbered flood at a rate plain capture holds here: every frame must be on disk
        count = 40000
        netns.run_in(link.h, [sys.executable, "-c", SENDER, link.tx, str(count), "20000"], timeout=60)
        w.wait_for(lambda d: d["type"] == "stats" and d["packets"] >= count, 20)
        assert_unprivileged(w.proc.pid)  # nothing in the steady state brought anything back
    finally:
        rc = w.stop()
    assert rc == 0, w.stderr_text()
    final = w.final()
    assert final["writer_drops"] == 0 and final["kernel_drops"] == 0, final
    files = sorted(out.rglob("*.pcapng"))
    assert_readers_only(files)
    got = numbers(files)
    assert sorted(got) == list(range(count)), f"{count - len(set(got))} of the flood missing"
    icmp = subprocess.run(["tshark", "-r", str(files[0]), "-Y", "icmp || icmpv6 || arp || http", "-T", "fields",
                           "-e", "frame.number"], capture_output=True, text=True, check=True).stdout.split()
    assert icmp, "the mixed traffic is not in the file"


def test_a_forbidden_system_call_kills_the_writer_and_only_with_the_filter(
        capture_binary, link, tmp_path: Path) -> None:  # noqa: ANN001
    """The library opens a TCP socket 1 s after start: fatal under the filter, harmless without."""
    env = ["env", f"LD_PRELOAD={FORBIDDEN}", "SLUICE_TEST_FORBIDDEN_AFTER=1"]
    for flags, killed in (([], True), (["--no-seccomp"], False)):
        out = tmp_path / ("sandboxed" if killed else "open")
        out.mkdir()
        argv = netns.exec_argv(link.cap, [*env, str(capture_binary), "--stats-interval", "0.2", "--ring-mb", "8",
                                          "--buffer-mb", "16", "-i", link.rx, "-w", str(out), *flags])
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
            assert not killed, "the forbidden call did not kill the sandboxed writer"
            assert rc == 0
        else:
            assert killed, f"the writer without the filter ended: {rc}: {proc.stderr.read() if proc.stderr else ''}"
            assert rc == -signal.SIGSYS, rc


def test_bad_user_or_group_is_one_line_and_exit_2(capture_binary, tmp_path: Path) -> None:  # noqa: ANN001
    for flag, name in (("--user", "sluice-no-such-user"), ("--group", "sluice-no-such-group")):
        p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), flag, name], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert name in p.stderr and "no such" in p.stderr
        assert not list(tmp_path.iterdir())


def test_the_supervisor_reports_and_restarts_a_writer_killed_by_seccomp(
        veth_ns, spool_root: Path, monkeypatch) -> None:  # noqa: ANN001
    spool = spool_root / "spool"
    cfg = write_config(spool_root / "sluice.toml", veth_ns.rx, spool)
    cfg.write_text(cfg.read_text().replace("[capture]\n", f'[capture]\nuser = "{USER}"\nreaders_group = "{GROUP}"\n'))
    # inherited by the supervisor and its writers; the library acts in sluice-capture only
    monkeypatch.setenv("LD_PRELOAD", str(FORBIDDEN))
    monkeypatch.setenv("SLUICE_TEST_FORBIDDEN_AFTER", "2")
    with Supervise(veth_ns.ns, cfg, spool) as sup:
        first = sup.state()["writers"][0]["pid"]
        sup.wait_for(lambda s: s["writers"][0]["up"] and s["writers"][0]["pid"] != first, 30, "a restarted writer")
        assert_unprivileged(sup.state()["writers"][0]["pid"])
    events = list(read_events(spool / "journal.jsonl"))
    exits = [e for e in events if e["event"] == "writer_exit"]
    assert exits and "SIGSYS" in exits[0]["reason"] and "seccomp" in exits[0]["reason"], exits
    assert exits[0]["returncode"] == -signal.SIGSYS
    host_dir = spool / "lab"
    gid = grp.getgrnam(GROUP).gr_gid
    for d in (spool, host_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750 and d.stat().st_gid == gid, d
    assert host_dir.stat().st_uid == pwd.getpwnam(USER).pw_uid
    assert_readers_only(capture_files(spool))


def test_sluice_pcap_and_extract_outputs_are_0640_whatever_the_umask(tmp_path: Path) -> None:
    import struct

    from tests.conftest import REPO, SLUICE_PCAP

    frame = bytes.fromhex("02aabbccdd02" "02aabbccdd01" "88b5") + b"\x55" * 50
    source = tmp_path / "in.pcap"
    source.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                       + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)
    out = tmp_path / "out.pcapng"
    old = os.umask(0)
    try:
        p = subprocess.run([str(SLUICE_PCAP), "convert", str(source), str(out)], capture_output=True, text=True,
                           timeout=30)
        # an extract that finds nothing writes an empty capture (its own code path, not sluice-pcap's)
        empty_spool = tmp_path / "spool"
        empty_spool.mkdir()
        for args in (["catalog", "rebuild", "--spool", str(empty_spool)],
                     ["extract", "--spool", str(empty_spool), "--from", "-1h", "--to", "now",
                      "-o", str(tmp_path / "empty.pcapng")]):
            subprocess.run([sys.executable, "-m", "appliance.cli", *args], check=True, capture_output=True,
                           timeout=60, cwd=REPO)
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "empty.pcapng").stat().st_mode) == 0o640
