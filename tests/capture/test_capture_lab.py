"""sluice-capture on the lab's SPAN port (a bridge mirrored with tc mirred), next to tcpdump:
the same mirrored packets (each h1<->h2 packet arrives twice), byte for byte."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.lab import traffic
from appliance.lab.harness.tcpdump import Tcpdump
from tests.capture.capfiles import packets_of, read_capture
from tests.capture.conftest import closed_files, start_writer, wait_in_capture
from tests.capture.test_capture_vs_tcpdump import assert_same
from tests.conftest import require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]


def test_span_port_capture_matches_tcpdump(lab, capture_binary, tmp_path: Path) -> None:
    require_tool("tcpdump")
    out = tmp_path / "spool"
    out.mkdir()
    ref = tmp_path / "tcpdump.pcap"
    dump = Tcpdump(lab.capture_ns, lab.capture_if, ref).start()
    w = start_writer(capture_binary, lab.capture_ns, ["-i", lab.capture_if, "-w", str(out), "--host", "lab",
                                                      "--rotate-size", "64K"])
    w.wait_ready()
    t0 = time.time_ns()
    assert traffic.ping(lab, "h1", "h2", 10, interval=0.01) == 10
    assert traffic.http_get(lab, "h2", "h1") > 0
    assert traffic.dns_query(lab, "h1")
    t1 = time.time_ns()
    # One more ping after the window: once tcpdump (immediate mode) has written it, it has the window.
    assert traffic.ping(lab, "h1", "h2", 1) == 1
    wait_in_capture(ref, lambda p: p.ts_ns > t1)
    assert w.stop() == 0, w.stderr_text()
    dump.stop()
    ours = [p for p in packets_of(closed_files(out)) if t0 <= p.ts_ns <= t1]
    theirs = [p for p in read_capture(ref).packets if t0 <= p.ts_ns <= t1]
    assert len(theirs) >= 40
    assert_same(ours, theirs)
    # a SPAN port sees both bridge ports: every echo request twice
    requests = [p.data for p in ours if p.data[12:14] == b"\x08\x00" and p.data[23] == 1 and p.data[34] == 8]
    assert len(requests) >= 20 and all(requests.count(r) >= 2 for r in requests)
