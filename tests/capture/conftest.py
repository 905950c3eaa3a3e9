"""Fixtures for the capture writer's tests: a veth link between two namespaces of our own, the
writer and tcpdump as real processes, and real traffic (ping, curl, python sockets, raw frames)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab import netns
from tests.conftest import SLUICE_CAPTURE, unique_name

NATIVE = SLUICE_CAPTURE.parent.parent


@pytest.fixture(scope="session")
def capture_binary() -> Path:
    subprocess.run(["flock", "/tmp/sluice-native.lock", "make", "-s", "-C", str(NATIVE)], check=True,
                   capture_output=True)
    return SLUICE_CAPTURE


@dataclass
class Link:
    """h (sender side, tx0) -- veth -- cap (capture side, rx0), each in its own namespace."""

    h: str
    cap: str
    tx: str = "tx0"
    rx: str = "rx0"
    h_ip: str = "192.0.2.1"
    cap_ip: str = "192.0.2.2"
    h_ip6: str = "2001:db8::1"
    cap_ip6: str = "2001:db8::2"


@pytest.fixture
def link() -> Iterator[Link]:
    h, cap = unique_name("sct-h-"), unique_name("sct-c-")
    netns.add_namespace(h)
    try:
        netns.add_namespace(cap)
        try:
            netns.add_veth(h, "tx0", cap, "rx0")
            for ns, ifname, ip4, ip6 in ((h, "tx0", "192.0.2.1", "2001:db8::1"),
                                         (cap, "rx0", "192.0.2.2", "2001:db8::2")):
                netns.ip("-n", ns, "addr", "add", f"{ip4}/24", "dev", ifname)
                netns.ip("-n", ns, "addr", "add", f"{ip6}/64", "dev", ifname, "nodad")
                netns.ip("-n", ns, "link", "set", ifname, "up")
                # Frames as on a wire (as the appliance tunes a capture NIC): no super-packets.
                netns.run_in(ns, ["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"])
                # No router solicitations: a quiet link between the tests' own packets.
                netns.run_in(ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.router_solicitations=0"])
            yield Link(h=h, cap=cap)
        finally:
            netns.kill_all_in(cap)
            netns.delete_namespace(cap)
    finally:
        netns.kill_all_in(h)
        netns.delete_namespace(h)


class Writer:
    """sluice-capture as a real process; its stats channel is collected line by line."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            self.lines.append(json.loads(line))

    def wait_for(self, pred, timeout: float = 10.0) -> dict:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if pred(line):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no matching stats line; stderr: {self.stderr_text()}")

    def wait_ready(self) -> None:
        self.wait_for(lambda d: d["type"] == "stats")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def stderr_text(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def files(self) -> list[dict]:
        return [d for d in self.lines if d["type"] == "file"]

    def final(self) -> dict:
        finals = [d for d in self.lines if d["type"] == "final"]
        assert len(finals) == 1, self.raw
        return finals[0]


# Small rings and buffers unless a test gives its own (a later flag wins): the defaults are sized
# from the machine's memory (native/src/capture/memplan.h), too much for many writers in parallel.
TEST_MEMORY = ["--ring-mb", "16", "--buffer-mb", "64"]


def start_writer(binary: Path, ns: str | None, args: list[str]) -> Writer:
    argv = [str(binary), "--stats-interval", "0.2", *TEST_MEMORY, *args]
    if ns is not None:
        argv = netns.exec_argv(ns, argv)
    return Writer(argv)


class Tcpdump:
    def __init__(self, ns: str, ifname: str, out: Path, extra: list[str] | None = None) -> None:
        argv = netns.exec_argv(ns, ["tcpdump", "-i", ifname, "-w", str(out), "-B", "65536", "-n", "-q",
                                    "--time-stamp-precision=nano", "-U", *(extra or [])])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on rx0, ..." once its socket is bound
        assert "listening" in line, line + self.proc.stderr.read()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)


RAW_SENDER = r"""
import socket, sys
frames = [bytes.fromhex(x) for x in sys.stdin.read().split()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for f in frames:
    s.send(f)
"""


def send_frames(ns: str, ifname: str, frames: list[bytes]) -> None:
    """Sends Ethernet frames as they are (e.g. 802.1Q-tagged) with an AF_PACKET socket."""
    subprocess.run(netns.exec_argv(ns, [sys.executable, "-c", RAW_SENDER, ifname]),
                   input=" ".join(f.hex() for f in frames), text=True, check=True, timeout=60)


def vlan_frames(count: int, vid: int = 100) -> list[bytes]:
    """802.1Q-tagged IPv4/UDP frames of various sizes (the kernel strips the tag on receive)."""
    import struct

    out = []
    for i in range(count):
        payload = bytes((i + j) & 0xFF for j in range(40 + 37 * i % 1400))
        udp = struct.pack("!HHHH", 40000 + i, 7777, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])) + udp
        eth = bytes.fromhex("02aabbccdd02" "02aabbccdd01") + struct.pack("!HH", 0x8100, (3 << 13) | vid)
        out.append(eth + struct.pack("!H", 0x0800) + ip)
    return out


UDP_SENDER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(bytes([i & 0xff]) * (20 + (i * 53) % 1400), (sys.argv[1], 9999))
"""


def mixed_traffic(link: Link, rounds: int = 1) -> None:
    """ARP, ICMP, full-size frames, IPv6, UDP, TCP (HTTP with curl) and VLAN-tagged frames."""
    server = subprocess.Popen(netns.exec_argv(link.cap, [sys.executable, "-m", "http.server", "--bind",
                                                         link.cap_ip, "8080"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=str(NATIVE / "src" / "capture"))
    try:
        for _ in range(rounds):
            netns.run_in(link.h, ["ping", "-c", "5", "-i", "0.01", link.cap_ip])
            netns.run_in(link.h, ["ping", "-c", "5", "-i", "0.01", "-s", "1472", link.cap_ip])
            netns.run_in(link.h, ["ping", "-6", "-c", "5", "-i", "0.01", link.cap_ip6])
            netns.run_in(link.h, [sys.executable, "-c", UDP_SENDER, link.cap_ip, "50"])
            send_frames(link.h, link.tx, vlan_frames(20))
            for _attempt in range(50):
                got = netns.run_in(link.h, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                            f"http://{link.cap_ip}:8080/assembler.c"], check=False)
                if got.stdout == "200":
                    break
                time.sleep(0.1)
            assert got.stdout == "200", got.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


MARK_ETHERTYPE = bytes.fromhex("88b5")  # IEEE local experimental


def marker(tag: str) -> bytes:
    return bytes.fromhex("02aabbccdd02" "02aabbccdd01") + MARK_ETHERTYPE + tag.encode().ljust(46, b"\0")


def between_markers(packets: list, start: str = "start", end: str = "end") -> list:
    """The packets strictly between the two marker frames (both captures were surely running)."""
    idx = {p.data[14:14 + len(t)].decode(errors="replace"): i for i, p in enumerate(packets)
           for t in (start, end) if p.data[12:14] == MARK_ETHERTYPE and p.data[14:].startswith(t.encode())}
    assert start in idx and end in idx, "marker frames missing"
    return packets[idx[start] + 1: idx[end]]


TRAFGEN_UDP = """{ 0x02,0xaa,0xbb,0xcc,0xdd,0x02, 0x02,0xaa,0xbb,0xcc,0xdd,0x01, 0x08,0x00,
  0x45,0x00, const16(%(ip_len)d), drnd(2), 0x00,0x00, 0x40,0x11,0x00,0x00,
  198,51,100,1, 198,51,100,2,
  0x9c,0x40,0x1e,0x61, const16(%(udp_len)d), 0x00,0x00,
  fill(0x55, %(payload)d) }
"""


def trafgen_conf(directory: Path, frame_len: int) -> Path:
    """A trafgen config for UDP frames of frame_len bytes (without FCS)."""
    payload = frame_len - 14 - 20 - 8
    conf = directory / f"udp{frame_len}.cfg"
    conf.write_text(TRAFGEN_UDP % {"ip_len": payload + 28, "udp_len": payload + 8, "payload": payload})
    return conf


def trafgen(ns: str, ifname: str, conf: Path, count: int, gap_us: int | None = None,
            cpu: int | None = None) -> subprocess.Popen:
    argv = ["trafgen", "--dev", ifname, "--conf", str(conf), "-q", "-n", str(count), "--cpus", "1"]
    if gap_us is not None:
        argv += ["-t", f"{gap_us}us"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    # its own session: trafgen forks a worker per CPU, and stop_trafgen must reach them all
    return subprocess.Popen(netns.exec_argv(ns, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def stop_trafgen(gen: subprocess.Popen) -> None:
    if gen.poll() is None:
        os.killpg(gen.pid, signal.SIGKILL)
    gen.wait(timeout=30)


def closed_files(directory: Path) -> list[Path]:
    """Capture files (hidden files such as a writer's lock file are not captures)."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.endswith(".part")
                  and not p.name.startswith("."))


def mount_tmpfs(path: Path, size: str, options: str = "") -> None:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "sluice-test", str(path)], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def is_root() -> bool:
    return os.geteuid() == 0
