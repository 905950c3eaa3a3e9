"""`sluice gaps` bad input: one line naming the cause, exit 2; and a whole period says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def gaps(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", "gaps", *args], cwd=REPO, capture_output=True,
                          text=True)


def test_bad_input(tmp_path: Path) -> None:
    garbage = tmp_path / "stats.jsonl"
    garbage.write_text("{not json\n" + json.dumps({"type": "stats", "ts": 1.0}) + "\n")
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00" * 30)
    for args, words in (
        (["--from", "100", "--to", "50", "--stats", str(garbage)], "is not after"),
        (["--from", "0", "--to", "50", "--stats", str(garbage)], "line 1: not JSON"),
        (["--from", "0", "--to", "50", "--stats", str(binary)], "not text"),
        (["--from", "0", "--to", "50", "--journal", str(tmp_path / "none.jsonl")], "No such file"),
        (["--from", "noon", "--to", "50", "--stats", str(garbage)], "not a time"),
        (["--from", "0", "--to", "50", "--config", str(tmp_path / "none.toml")], "none.toml"),
    ):
        proc = gaps(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], (args, proc.stderr)


def test_whole_period(tmp_path: Path) -> None:
    stats = tmp_path / "stats.jsonl"
    stats.write_text("".join(json.dumps({"type": "stats", "v": 1, "ts": 100 + i * 0.2, "interface": "eth1",
                                         "packets": i * 10, "kernel_drops": 0, "writer_drops": 0}) + "\n"
                             for i in range(20)))
    proc = gaps("--from", "100", "--to", "104", "--stats", str(stats))
    assert proc.returncode == 0 and proc.stdout.startswith("whole from 1970-01-01T00:01:40.000000000Z")


def test_catalog_ledger_is_incremental_and_carries_counters_over_days(tmp_path: Path) -> None:
    """Stats split over two day files and read in pieces give the runs of one pass over all of it;
    the second day's first line does not count the first day's drops again."""
    from appliance.gaps import ledger, store

    lines = []
    drops = 0
    for i in range(60):
        ts = 86400 * 3 - 30 + i * 1.0  # 30 s on each side of a UTC midnight
        if i in (10, 11, 40):
            drops += 100 + i
        lines.append({"type": "stats", "v": 1, "ts": ts, "interface": "eth1", "packets": i * 10,
                      "kernel_drops": drops, "writer_drops": 0})
    lines.insert(50, {"type": "final", "v": 1, "ts": lines[49]["ts"] + 0.1, "interface": "eth1",
                      "packets": 490, "kernel_drops": drops, "writer_drops": 0})
    for row in lines[51:]:
        row["kernel_drops"] -= drops  # a new process from second 50 on
        row["packets"] -= 490
    lines = [row for row in lines if not 53 < row["ts"] - (86400 * 3 - 30) < 57]  # and a silence
    spool = tmp_path / "spool"
    (spool / "stats").mkdir(parents=True)
    journal = spool / "journal.jsonl"
    journal.write_text(json.dumps({"ts": 86400 * 3 + 5.5, "event": "writer_exit", "interface": "eth1"}) + "\n")
    for n in range(0, len(lines), 7):
        for row in lines[n:n + 7]:
            day = "1970-01-03" if row["ts"] < 86400 * 3 else "1970-01-04"
            with open(spool / "stats" / f"eth1-{day}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        store.refresh(spool, journal, now=86400 * 3 + 8.0)
    journal.write_text(journal.read_text() + json.dumps({"ts": 86400 * 3 + 8.0, "event": "writer_start",
                                                         "interface": "eth1"}) + "\n")
    store.refresh(spool, journal, now=86400 * 3 + 40)
    start, end = 86400 * 3 - 40, 86400 * 3 + 40
    expected = ledger.ledger(start, end, journal, sorted((spool / "stats").glob("*.jsonl")))
    assert store.query(spool, start, end) == expected
    assert sum(g.lost or 0 for g in expected if g.cause == "kernel_drops") == 110 + 111 + 140
    assert {g.cause for g in expected} == {"kernel_drops", "writer_down"}
    down = [g for g in expected if g.cause == "writer_down"]
    assert [(g.start - 86400 * 3, g.end - 86400 * 3) for g in down] == [(5, 8), (19, 20), (23, 27)]
