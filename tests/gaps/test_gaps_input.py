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
