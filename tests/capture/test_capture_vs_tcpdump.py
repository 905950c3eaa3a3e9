"""Sluice and tcpdump capture the same interface at the same time: same packets, byte for byte,
same nanosecond timestamps, across several rotated files; and the same packets for filters."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab.harness.tcpdump import Tcpdump
from tests.capture.capfiles import packets_of, read_capture
from tests.capture.conftest import (
    between_markers,
    closed_files,
    marker,
    mixed_traffic,
    send_frames,
    start_writer,
    vlan_frames,
    wait_in_capture,
)
from tests.conftest import require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]


def is_local_tcp(p) -> bool:  # noqa: ANN001
    return (p.data[12:14] == b"\x08\x00" and p.data[23] == 6) or (p.data[12:14] == b"\x86\xdd" and p.data[20] == 6)


def assert_same(ours: list, theirs: list) -> None:
    """Same frames byte for byte and the same ns timestamps.

    Order is compared per direction only: packets sent and received on the interface reach two
    sockets from two CPUs, so two listeners may queue them in a different order.
    One kernel exception, not ours: TCP from a local socket carries its send time (EDT, a
    monotonic "delivery time") across the veth, and af_packet then stamps such a packet with a
    fresh clock read for each listening socket; tcpdump and Sluice differ by microseconds there.
    Every other packet has one receive stamp shared by all taps and must match exactly.
    """
    assert len(ours) == len(theirs), first_difference(ours, theirs)
    exact_ours = sorted((p.ts_ns, p.origlen, p.data) for p in ours if not is_local_tcp(p))
    exact_theirs = sorted((p.ts_ns, p.origlen, p.data) for p in theirs if not is_local_tcp(p))
    for i, (x, y) in enumerate(zip(exact_ours, exact_theirs, strict=True)):
        assert x == y, f"packet {i} in time order: sluice {x[0]} {x[2][:40].hex()} / tcpdump {y[0]} {y[2][:40].hex()}"
    tcp_ours = sorted((p.data, p.origlen, p.ts_ns) for p in ours if is_local_tcp(p))
    tcp_theirs = sorted((p.data, p.origlen, p.ts_ns) for p in theirs if is_local_tcp(p))
    for x, y in zip(tcp_ours, tcp_theirs, strict=True):
        assert x[:2] == y[:2], f"TCP frame differs: {x[0][:40].hex()} / {y[0][:40].hex()}"
        assert abs(x[2] - y[2]) < 1_000_000, f"TCP frame stamped {x[2]} vs {y[2]}"


def first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return (f"packet {i}: sluice {x.ts_ns} {x.origlen} {x.data[:32].hex()} / "
                    f"tcpdump {y.ts_ns} {y.origlen} {y.data[:32].hex()}")
    return f"lengths {len(a)} vs {len(b)}"


@pytest.mark.parametrize("fmt,workers", [("pcapng", 1), ("pcap", 1), ("pcapng", 3)])
def test_same_packets_and_timestamps_as_tcpdump(link, capture_binary, tmp_path: Path, fmt: str,
                                                workers: int) -> None:
    require_tool("tcpdump")
    out = tmp_path / "sluice"
    out.mkdir()
    ref = tmp_path / "tcpdump.pcap"
    dump = Tcpdump(link.cap, link.rx, ref).start()
    writer = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(out), "--format", fmt,
                                                     "--rotate-size", "32K", "--host", "t1",
                                                     "--workers", str(workers)])
    writer.wait_ready()
    send_frames(link.h, link.tx, [marker("start")])
    mixed_traffic(link, rounds=2)
    send_frames(link.h, link.tx, [marker("end")])
    wait_in_capture(ref, lambda p: p.data == marker("end"))  # tcpdump (immediate mode) has it all
    assert writer.stop() == 0, writer.stderr_text()
    dump.stop()

    files = closed_files(out)
    assert len(files) >= 3, "expected several rotated files"
    assert all(f.suffix == f".{fmt}" for f in files)
    all_ours = packets_of(files)
    ours = between_markers(all_ours)
    theirs = between_markers(read_capture(ref).packets)
    assert len(theirs) > 100
    assert_same(ours, theirs)
    # the traffic had all the kinds we promise to keep whole
    ethertypes = {p.data[12:14].hex() for p in ours}
    assert {"0800", "0806", "86dd", "8100"} <= ethertypes
    assert max(p.origlen for p in ours) == 1514
    final = writer.final()
    assert final["packets"] == len(all_ours) and final["writer_drops"] == 0
    # Wireshark's reader agrees on every file
    info = subprocess.run(["capinfos", "-c", "-M", "-T", *map(str, files)], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    counts = [int(line.split("\t")[1]) for line in info.stdout.splitlines()[1:]]
    assert counts == [len(read_capture(f).packets) for f in files]
    assert final["files_closed"] == len(files)
    assert [Path(f["path"]) for f in writer.files()] == files


FILTERS = ["icmp", "udp port 9999", "tcp and port 8080", "arp or icmp6", "vlan 100", "ip6 or vlan",
           "greater 1000"]


@pytest.mark.parametrize("expr", FILTERS)
def test_filters_keep_what_tcpdump_keeps(link, capture_binary, tmp_path: Path, expr: str) -> None:
    require_tool("tcpdump")
    out = tmp_path / "sluice"
    out.mkdir()
    ref = tmp_path / "tcpdump.pcap"
    dump = Tcpdump(link.cap, link.rx, ref, bpf=[expr]).start()
    writer = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(out), "--filter", expr])
    writer.wait_ready()
    t0 = time.time_ns()
    mixed_traffic(link)
    send_frames(link.h, link.tx, vlan_frames(5, vid=200))
    t1 = time.time_ns()
    # No frame passes every filter to mark the end: tcpdump runs in immediate mode (no ring block
    # held back), this is only its time to be scheduled and write the last packets.
    time.sleep(0.5)
    assert writer.stop() == 0, writer.stderr_text()
    dump.stop()
    # the window in which both surely ran (markers would not pass every filter)
    ours = [p for p in packets_of(closed_files(out)) if t0 <= p.ts_ns <= t1]
    theirs = [p for p in read_capture(ref).packets if t0 <= p.ts_ns <= t1]
    assert theirs, f"tcpdump kept nothing for {expr!r}: the test traffic should match it"
    assert_same(ours, theirs)
    idb = read_capture(closed_files(out)[0]).idb_options
    assert idb[11][0] == b"\x00" + expr.encode()
