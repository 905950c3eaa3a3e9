"""Fixtures for the capture writer's tests: a veth link between two namespaces of our own, the
writer and tcpdump as real processes, and real traffic (ping, curl, python sockets, raw frames)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.writer import Writer
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


# Small rings and buffers unless a test gives its own (a later flag wins): the defaults are sized
# from the machine's memory (native/src/capture/memplan.h), too much for many writers in parallel.
TEST_MEMORY = ["--ring-mb", "16", "--buffer-mb", "64"]


def start_writer(binary: Path, ns: str | None, args: list[str]) -> Writer:
    """The writer harness with the tests' defaults: a stats line every 0.2 s, small memory. Started,
    not yet waited for (`wait_ready()` or `with`): some tests look at a writer that never gets ready."""
    return Writer([str(binary), "--stats-interval", "0.2", *TEST_MEMORY, *args], ns)


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
        netns.wait_listening(link.cap, 8080)
        for _ in range(rounds):
            netns.run_in(link.h, ["ping", "-c", "5", "-i", "0.01", link.cap_ip])
            netns.run_in(link.h, ["ping", "-c", "5", "-i", "0.01", "-s", "1472", link.cap_ip])
            netns.run_in(link.h, ["ping", "-6", "-c", "5", "-i", "0.01", link.cap_ip6])
            netns.run_in(link.h, [sys.executable, "-c", UDP_SENDER, link.cap_ip, "50"])
            send_frames(link.h, link.tx, vlan_frames(20))
            got = netns.run_in(link.h, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                        f"http://{link.cap_ip}:8080/assembler.c"], check=False)
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


def wait_in_capture(path: Path, pred, timeout: float = 10.0) -> None:  # noqa: ANN001
    """Until the capture file at path (tcpdump's, written packet by packet with -U) holds a packet
    for which pred(packet) is true: the event that tcpdump has taken everything sent before it."""
    from tests.capture.capfiles import read_capture

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(pred(p) for p in read_capture(path).packets):
                return
        except (OSError, ValueError, AssertionError, IndexError):
            pass  # not there yet, or a record half written
        time.sleep(0.05)  # a file, not a socket: polled
    raise AssertionError(f"{path.name}: the packet waited for did not arrive within {timeout:g} s")


def closed_files(directory: Path) -> list[Path]:
    """Capture files (hidden files such as a writer's lock file are not captures)."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.endswith(".part")
                  and not p.name.startswith("."))


def is_root() -> bool:
    return os.geteuid() == 0
