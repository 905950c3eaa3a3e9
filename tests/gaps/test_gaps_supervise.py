"""`sluice gaps --config` on what a real `sluice supervise` kept: its writer is frozen while trafgen
floods the lab's SPAN port (kernel drops), then killed with SIGKILL (writer down until the
supervisor restarts it). The ledger reads SPOOL/stats/ (the writers' stats lines the supervisor
keeps) and the journal, and counts the same drops as the supervisor's own totals."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.lab import traffic
from tests.conftest import REPO
from tests.supervisor.running import Supervise, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]


def test_gaps_from_a_supervised_capture(lab, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra="[nic]\ntune = false\n")
    t0 = time.time()
    with Supervise(lab.capture_ns, cfg, spool) as sup:
        pid = sup.state()["writers"][0]["pid"]
        t_freeze = time.time()
        subprocess.run(["kill", "-STOP", str(pid)], check=True)
        try:
            traffic.flood(lab, "h1", "h2", count=30_000, size=1442)  # far more than the 8 MiB ring holds
        finally:
            subprocess.run(["kill", "-CONT", str(pid)], check=True)
        t_thaw = time.time()
        state = sup.wait_for(lambda s: s["writers"][0]["totals"]["kernel_drops"] > 0, 15, "kernel drops counted")
        time.sleep(1.5)  # deliberate: seconds between the thaw and the kill, for the ledger to tell them apart
        t_kill = time.time()
        subprocess.run(["kill", "-9", str(pid)], check=True)
        state = sup.wait_for(lambda s: s["writers"][0]["up"] and s["writers"][0]["pid"] not in (None, pid), 15,
                             "writer back")
        t_back = time.time()
        time.sleep(2.5)  # deliberate: whole seconds between the restart and the stop
        totals = sup.state()["writers"][0]["totals"]
        t_stop = time.time()
        assert sup.stop() == 0
    t_end = time.time()
    assert list((spool / "stats").glob(f"{lab.capture_if}-*.jsonl"))

    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "gaps", "--config", str(cfg), "--from", str(t0),
                           "--to", str(t_end), "--json"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    runs = [json.loads(line) for line in proc.stdout.splitlines()]
    drops = [r for r in runs if r["cause"] == "kernel_drops"]
    assert sum(r["lost"] for r in drops) == totals["kernel_drops"] == state["writers"][0]["totals"]["kernel_drops"]
    assert all(math.floor(t_freeze) - 1 <= r["start"] and r["end"] <= math.ceil(t_thaw) + 2 for r in drops)
    down = [r for r in runs if r["cause"] == "writer_down"]
    assert down and all(r["lost"] is None for r in down)
    # the kill: from the dead writer's last stats line to the restarted one's first
    killed = [r for r in down if r["start"] <= math.ceil(t_kill) and r["end"] >= math.floor(t_back)]
    assert len(killed) == 1, runs
    assert killed[0]["start"] >= math.floor(t_kill) - 1 and killed[0]["end"] <= math.ceil(t_back) + 1, runs
    # after `sluice supervise` stopped nothing captures: down from its stop to the end of the range
    # (the range ends at t_end, in the past: an open interval is closed at the refresh, so a range
    # reaching into the future would end the run at the moment `sluice gaps` ran)
    assert down[-1]["start"] >= math.floor(t_stop) - 1 and down[-1]["end"] == math.ceil(t_end)
    # between the restart and the stop the capture was whole
    assert not [r for r in runs if r["end"] > math.ceil(t_back) + 1 and r["start"] < math.floor(t_stop) - 1]
