"""The gap ledger against a real capture with known losses: sluice-capture on a veth link under a
trafgen stream is frozen (SIGSTOP: its ring overflows, the kernel drops), then killed and started
again (writer down), and the journal records a clock step. Every second of those events is found
lossy with its cause, the drops are counted to the packet, and no second in which nothing could
be lost (no traffic, writer running) is marked lossy. (Seconds of traffic outside the freeze are
not asserted whole: on a loaded 2-core machine a starved writer may really drop there.)"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.gaps import ledger
from appliance.lab.harness.mounts import tmpfs
from appliance.lab.harness.trafgen import Trafgen, udp_conf
from tests.capture.conftest import (  # noqa: F401
    capture_binary,
    link,
    start_writer,
)
from tests.conftest import REPO, require_tool
from tests.gaps.stored import stored_runs

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _covered(runs: list[ledger.Gap], cause: str) -> set[int]:
    return {s for g in runs if g.cause == cause for s in range(int(g.start), int(g.end))}


def test_ledger_finds_every_lost_second(link, capture_binary, tmp_path: Path) -> None:  # noqa: F811
    require_tool("trafgen")
    spool = tmp_path / "spool"
    spool.mkdir()
    args = ["-i", link.rx, "-w", str(spool), "--ring-mb", "4", "--host", "t"]
    first = start_writer(capture_binary, link.cap, args)
    first.wait_ready()
    t_ready = time.time()
    time.sleep(2.5)  # a deliberate gap: idle seconds the ledger must call whole, nothing to lose
    t_traffic = time.time()
    gen = Trafgen(link.h, link.tx, udp_conf(tmp_path, 1442), count=100000, gap_us=200).start()
    time.sleep(1.0)  # a deliberate gap: a second of traffic captured whole before the freeze
    t_freeze = time.time()
    first.proc.send_signal(signal.SIGSTOP)
    time.sleep(2.2)  # a deliberate gap: the writer frozen, a whole second lies inside
    t_thaw = time.time()
    first.proc.send_signal(signal.SIGCONT)
    first.wait_for(lambda d: d["type"] == "stats" and d["ts"] > t_thaw)
    gen.stop()
    t_quiet = time.time()
    time.sleep(3.0)  # a deliberate gap: quiet again, seconds the ledger must call whole
    t_kill = time.time()
    first.stop(signal.SIGKILL)
    time.sleep(2.2)  # a deliberate gap: no writer at all, a whole second the ledger must find
    t_restart = time.time()
    second = start_writer(capture_binary, link.cap, args)
    second.wait_ready()
    second.wait_for(lambda d: d["type"] == "stats" and d["ts"] >= t_restart + 0.5)  # half a second captured
    assert second.stop() == 0, second.stderr_text()
    t_end = time.time()

    stats = tmp_path / "stats.jsonl"
    stats.write_text("".join(first.raw + second.raw))
    step_at = t_end + 1.3
    journal = tmp_path / "journal.jsonl"
    journal.write_text(json.dumps({"ts": step_at, "event": "time_step", "step_seconds": -0.8}) + "\n"
                       + json.dumps({"ts": t_end, "event": "note", "text": "not a loss"}) + "\n")

    runs = ledger.ledger(t_traffic - 2, t_end + 3, journal, [stats])
    assert {g.interface for g in runs} == {link.rx}
    # the catalog's ledger, fed line by line as the writers run (each writer in three chunks, the
    # journal from the start), holds the same runs
    chunks = [first.raw[:len(first.raw) // 2], first.raw[len(first.raw) // 2:],
              second.raw[:3], second.raw[3:]]
    assert stored_runs(tmp_path / "spool-db", chunks, t_traffic - 2, t_end + 3, journal, now=t_end + 3) == runs

    # the freeze: the kernel dropped, the ledger counts exactly what the writer reported
    drops = [g for g in runs if g.cause == "kernel_drops"]
    reported = max(d["kernel_drops"] for d in first.lines if d["type"] == "stats")
    assert reported > 500 and second.final()["kernel_drops"] == 0
    assert sum(g.lost for g in drops) == reported
    frozen = set(range(math.ceil(t_freeze), math.floor(t_thaw)))
    assert frozen and frozen <= _covered(runs, "kernel_drops")
    assert _covered(runs, "kernel_drops") <= set(range(math.floor(t_traffic) - 1, math.ceil(t_quiet) + 1))

    # the kill: from the last line of the dead writer to the first of the new one
    down = _covered(runs, "writer_down")
    assert set(range(math.ceil(t_kill), math.floor(t_restart))) <= down
    assert down <= set(range(math.floor(t_kill) - 1, math.ceil(t_restart) + 2))
    assert all(g.lost is None for g in runs if g.cause == "writer_down")  # nobody could count

    # the clock step: its second, on the interface
    assert _covered(runs, "clock_stepped") == {math.floor(step_at)}

    # no traffic, writer running: whole (a stats interval reaches 0.2 s past each end)
    idle = set(range(math.ceil(t_ready), math.floor(t_traffic - 0.3))) | set(
        range(math.floor(t_quiet + 0.3) + 1, math.floor(t_kill - 0.3)))
    assert len(idle) >= 2
    assert not any(s in idle for g in runs for s in range(int(g.start), int(g.end)))

    # the command prints the same runs
    cli = subprocess.run([sys.executable, "-m", "appliance.cli", "gaps", "--from", str(t_traffic - 2),
                          "--to", str(t_end + 3), "--stats", str(stats), "--journal", str(journal), "--json"],
                         cwd=REPO, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line) for line in cli.stdout.splitlines()] == [ledger.to_json(g) for g in runs]
    table = subprocess.run([sys.executable, "-m", "appliance.cli", "gaps", "--from", str(t_traffic - 2),
                            "--to", str(t_end + 3), "--stats", str(stats), "--journal", str(journal)],
                           cwd=REPO, capture_output=True, text=True)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == len(runs) + 1
    assert f"kernel_drops   {drops[0].lost}" in table.stdout or "kernel_drops" in table.stdout


def test_ledger_of_a_full_disk(link, capture_binary, tmp_path: Path) -> None:  # noqa: F811
    """A 6 MiB spool fills under a trafgen stream: the seconds the writer reported ENOSPC are
    `disk_error`, the packets it had to drop are `writer_drops` counted to the packet, and the
    seconds before the disk filled are whole."""
    require_tool("trafgen")
    disk = tmp_path / "disk"
    with tmpfs(disk, "6M"):
        w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(disk), "--rotate-size", "1M",
                                                    "--buffer-mb", "4", "--host", "full"])
        w.wait_ready()
        time.sleep(2.5)  # a deliberate gap: idle seconds before the flood, to be found whole
        t_traffic = time.time()
        with Trafgen(link.h, link.tx, udp_conf(tmp_path, 1200), count=60000, gap_us=200):
            full = w.wait_for(lambda d: d["type"] == "stats" and d["disk_error"] == "ENOSPC", timeout=60)
            w.wait_for(lambda d: d["type"] == "stats" and d["ts"] > full["ts"] + 2.0, timeout=20)
        assert w.stop() == 0, w.stderr_text()
    stats = tmp_path / "stats.jsonl"
    stats.write_text("".join(w.raw))
    lines = [d for d in w.lines if d["type"] in ("stats", "final")]
    runs = ledger.ledger(lines[0]["ts"], lines[-1]["ts"] + 1, None, [stats])
    third = len(w.raw) // 3
    assert stored_runs(tmp_path / "spool-db", [w.raw[:third], w.raw[third:2 * third], w.raw[2 * third:]],
                       lines[0]["ts"], lines[-1]["ts"] + 1) == runs

    final = w.final()
    assert final["writer_drops"] > 0 and final["kernel_drops"] == 0
    assert sum(g.lost for g in runs if g.cause == "writer_drops") == final["writer_drops"]
    reported = {math.floor(d["ts"]) for d in lines if d.get("disk_error")}
    assert reported and reported <= _covered(runs, "disk_error")
    # every disk_error second lies between the line before the first report and the last report
    first = max(d["ts"] for d in lines if d["ts"] < min(x["ts"] for x in lines if x.get("disk_error")))
    last = max(d["ts"] for d in lines if d.get("disk_error"))
    assert _covered(runs, "disk_error") <= set(range(math.floor(first), math.floor(last) + 1))
    # idle before the stream: whole
    idle = set(range(math.ceil(lines[0]["ts"]), math.floor(t_traffic - 0.3)))
    assert idle and not any(s in idle for g in runs for s in range(int(g.start), int(g.end)))
