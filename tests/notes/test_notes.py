"""`sluice notes add|list`: notes land in the journal whole, next to the supervisor's own events,
and bad input or an unwritable journal is one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from appliance.journal import Journal
from tests.conftest import REPO


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO, capture_output=True, text=True)


def test_notes_interleave_whole_with_journal_events(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["eth9"]\nspool = "{spool}"\n')
    journal = Journal(spool / "journal.jsonl")
    stop = threading.Event()

    def supervisor_events() -> None:
        n = 0
        while not stop.is_set():
            journal.append("drops", interface="eth9", kernel_drops=n, pad="x" * 300)
            n += 1
            stop.wait(0.002)

    writer = threading.Thread(target=supervisor_events)
    writer.start()
    try:
        for i in range(5):
            proc = sluice("notes", "add", "--config", str(config), f"note {i}: ünïcode, \"quotes\"\nand a line")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.startswith("note added at ")
        proc = sluice("notes", "add", "--config", str(config), "--at", "2026-11-29T09:30:00Z", "--author", "ops",
                      "switch", "3", "rebooted")
        assert proc.returncode == 0, proc.stderr
    finally:
        stop.set()
        writer.join()
        journal.close()
    records = [json.loads(line) for line in (spool / "journal.jsonl").read_text().splitlines()]
    notes = [r for r in records if r["event"] == "note"]
    assert [n["text"] for n in notes[:5]] == [f"note {i}: ünïcode, \"quotes\"\nand a line" for i in range(5)]
    assert notes[5]["text"] == "switch 3 rebooted" and notes[5]["author"] == "ops"
    assert notes[5]["at"] == 1795944600.0 and notes[5]["ts"] > notes[5]["at"]
    assert sum(r["event"] == "drops" for r in records) > 5
    listed = sluice("notes", "list", "--config", str(config), "--from", "2026-11-29T09:29:59Z",
                    "--to", "2026-11-29T09:30:01Z")
    assert listed.returncode == 0 and listed.stdout == "2026-11-29T09:30:00.000000000Z  ops: switch 3 rebooted\n"
    as_json = sluice("notes", "list", "--journal", str(spool / "journal.jsonl"), "--json")
    assert len(as_json.stdout.splitlines()) == 6


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    for args, code, words in (
        (["notes", "add", "--journal", str(journal), "  "], 2, "empty"),
        (["notes", "add", "--journal", str(tmp_path / "no" / "j.jsonl"), "x"], 1, "No such file"),
        (["notes", "add", "--journal", str(journal), "--at", "soon", "x"], 2, "not a time"),
        (["notes", "list", "--journal", str(tmp_path / "missing.jsonl")], 2, "no such file"),
        (["notes", "add", "--config", str(tmp_path / "none.toml"), "x"], 2, "none.toml"),
    ):
        proc = sluice(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == code and len(lines) == 1 and words in lines[0], (args, proc.stderr)
    assert not journal.exists()
