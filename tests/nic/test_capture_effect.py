"""Why tuning matters, shown with real traffic: GRO on the capture port merges mirrored TCP
segments into frames that never were on the wire; after `sluice nic tune` tcpdump sees the
wire-sized frames that were sent."""

from __future__ import annotations

import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.tcpdump import Tcpdump
from tests.conftest import require_tool, unique_name
from tests.nic.conftest import sluice_nic

pytestmark = [pytest.mark.root, pytest.mark.netns]

WIRE_MAX = 1514  # Ethernet header + 1500 bytes MTU


@pytest.fixture
def mirrored_tcp() -> Iterator[tuple[str, str, str]]:
    """A sender (namespace A, 192.0.2.1, TSO/GSO off so it sends wire-sized frames) talking TCP
    to a server (B, 192.0.2.2); everything B receives is mirrored (tc u32 + mirred, as a switch's
    SPAN session) to interface `cap` in the capture namespace C, which never talks."""
    a, b, c = (unique_name(f"sluice-n{r}-") for r in "abc")
    try:
        for ns in (a, b, c):
            netns.add_namespace(ns)
        netns.add_veth(a, "snd", b, "rcv")
        netns.add_veth(b, "mir", c, "cap")
        netns.ip("-n", a, "addr", "add", "192.0.2.1/24", "dev", "snd")
        netns.ip("-n", b, "addr", "add", "192.0.2.2/24", "dev", "rcv")
        netns.run_in(a, ["ethtool", "-K", "snd", "tso", "off", "gso", "off"])
        # veth hands frames to the peer's GRO only when the sending end cannot do TSO itself.
        netns.run_in(b, ["ethtool", "-K", "mir", "tso", "off", "gso", "off"])
        netns.run_in(b, ["tc", "qdisc", "add", "dev", "rcv", "clsact"])
        netns.run_in(b, ["tc", "filter", "add", "dev", "rcv", "ingress", "protocol", "all", "u32",
                         "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "mir"])
        yield a, b, c
    finally:
        for ns in (a, b, c):
            netns.delete_namespace(ns)


def frame_lengths(pcap: Path) -> list[int]:
    """Original (on-the-wire) lengths of every record of a classic pcap file."""
    data = pcap.read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    lengths, offset = [], 24
    while offset + 16 <= len(data):
        _, _, incl, orig = struct.unpack(endian + "IIII", data[offset:offset + 16])
        lengths.append(orig)
        offset += 16 + incl
    return lengths


def capture_bulk_tcp(sender: str, server_ns: str, capture: str, pcap: Path) -> list[int]:
    """tcpdump on `cap` while iperf3 sends 4 MB from the sender; the captured frame lengths."""
    server = subprocess.Popen(netns.exec_argv(server_ns, ["iperf3", "-s", "-1"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Tcpdump(capture, "cap", pcap, ("-n", "-U", "--immediate-mode", "-s", "128"), bpf=["tcp"]):
            netns.run_in(sender, ["iperf3", "-c", "192.0.2.2", "-n", "4M", "--connect-timeout", "3000"],
                         timeout=30)
            # tcpdump in immediate mode: its time to be scheduled and write the last segments
            time.sleep(1.0)
    finally:
        server.kill()
        server.wait(timeout=10)
    return frame_lengths(pcap)


def test_gro_merges_frames_until_tune_turns_it_off(mirrored_tcp: tuple[str, str, str],
                                                   tmp_path: Path) -> None:
    for tool in ("iperf3", "tcpdump", "ethtool"):
        require_tool(tool)
    sender, server, capture = mirrored_tcp
    netns.run_in(capture, ["ethtool", "-K", "cap", "gro", "on"])

    untuned = capture_bulk_tcp(sender, server, capture, tmp_path / "untuned.pcap")
    assert max(untuned) > WIRE_MAX  # frames that never were on the wire

    assert sluice_nic(capture, "tune", "cap").returncode == 0
    tuned = capture_bulk_tcp(sender, server, capture, tmp_path / "tuned.pcap")
    assert len(tuned) > len(untuned)  # the same 4 MB, now as the segments that were sent
    assert max(tuned) <= WIRE_MAX
