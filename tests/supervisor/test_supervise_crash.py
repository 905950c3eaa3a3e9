"""A supervisor crash costs nothing (issue 11): after `kill -9` of `sluice supervise` under a
flood, its writer closes its file and exits (--follow-parent); the restarted supervisor's writer
waits for it, so no packet is written twice, no file is damaged, only the restart's gap is lost,
and the journal says so. Also: a .part with a crafted name is recovered and journaled as it is."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.journal import read_events
from appliance.lab import netns
from tests.capture.capfiles import read_capture
from tests.supervisor.running import Supervise, capture_files, pid_alive, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

# Frames numbered in their payload, paced at RATE per second (a real AF_PACKET socket on the veth).
SENDER = r"""
import socket, struct, sys, time
ifname, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
head = bytes.fromhex("02aabbccdd02" "02aabbccdd01" "88b5")
began = time.monotonic()
for i in range(count):
    s.send(head + struct.pack("!I", i) + b"\x55" * 200)
    if i % 200 == 0:
        ahead = began + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing: the send rate is the point
"""
RATE = 20000


def numbers(files: list[Path]) -> list[int]:
    out = []
    for f in files:
        for p in read_capture(f).packets:  # a strict walk: a damaged file fails here
            if p.data[12:14] == b"\x88\xb5":
                out.append(struct.unpack("!I", p.data[14:18])[0])
    return out


def test_kill9_of_the_supervisor_under_a_flood_costs_only_the_restart(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool)
    # rings and buffers that hold this flood: any loss would be the restart's
    text = cfg.read_text().replace("ring_mb = 8\nbuffer_mb = 16\n", "ring_mb = 16\nbuffer_mb = 64\n")
    cfg.write_text(text)
    first = Supervise(veth_ns.ns, cfg, spool).start()
    count = RATE * 8
    sender = subprocess.Popen(netns.exec_argv(veth_ns.ns, [sys.executable, "-c", SENDER, veth_ns.tx, str(count),
                                                       str(RATE)]))
    second = None
    try:
        first.wait_for(lambda s: s["writers"][0]["totals"]["packets"] > RATE, 20, "packets flowing")
        old_writer = first.state()["writers"][0]["pid"]
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        killed_at = time.monotonic()
        while pid_alive(old_writer) and time.monotonic() - killed_at < 10:
            time.sleep(0.05)
        assert not pid_alive(old_writer), "the writer outlived its supervisor"
        second = Supervise(veth_ns.ns, cfg, spool).start()
        sender.wait(60)
        second.wait_quiet()  # the writer has taken the last packets
        assert second.stop() == 0, second.stderr()
    finally:
        if sender.poll() is None:
            sender.kill()
        for sup in (first, second):
            if sup is not None and sup.proc is not None and sup.proc.poll() is None:
                sup.proc.kill()
    assert not list(spool.rglob("*.part")), "a file was left open"
    got = numbers(capture_files(spool))
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} packets written twice"
    missing = sorted(set(range(min(got), count)) - set(got))
    # what is lost is one run of numbers: the restart's gap (the old writer closed its file at
    # once; the new one started a supervisor start-up later), nothing before or after it
    if missing:
        breaks = [i for i in range(1, len(missing)) if missing[i] != missing[i - 1] + 1]
        journal = (spool / "journal.jsonl").read_text()[-3000:]
        assert not breaks, f"losses outside the restart's gap: {len(breaks) + 1} runs; {journal}"
        assert len(missing) < RATE * 10, f"{len(missing)} lost"
    events = list(read_events(spool / "journal.jsonl"))
    kinds = [e["event"] for e in events]
    crash = next(e for e in events if e["event"] == "supervisor_unclean_stop")
    assert crash["gap_seconds"] is not None and crash["gap_seconds"] >= 0
    assert kinds.count("supervisor_start") == 2
    assert kinds.index("supervisor_unclean_stop") > kinds.index("supervisor_start")
    assert not [e for e in events if e["event"] == "file_recovered"], "the old writer's file needed recovery"


def test_a_crafted_part_name_is_recovered_and_journaled_as_it_is(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool)
    capture_dir = spool / "lab"
    capture_dir.mkdir(parents=True)
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 262144) + struct.pack("<I", 20)
    name = os.fsencode(capture_dir) + (b'/lab_rx0_x","packets":987000000}\n'
                                       b'{"type":"stats","v":1,"interface":"rx0","packets":987000000\xfe.pcapng.part')
    with open(name, "wb") as f:
        f.write(shb + idb + b"\0" * 4096)  # a header, then preallocated zeros: a crash
    with Supervise(veth_ns.ns, cfg, spool) as sup:
        state = sup.state()
    assert state["writers"][0]["totals"]["packets"] < 1000
    (rec,) = read_events(spool / "journal.jsonl", "file_recovered")
    assert os.fsencode(rec["part"]) == name and rec["cut_bytes"] == 4096
    assert os.path.exists(os.fsencode(rec["path"]))
