"""Every `sluice` command, run as an operator runs it, on input meant to break it: one line on
stderr and exit 2 (bad config) or 1 (bad status file), never a traceback; output into a pipe
whose reader is gone: a quiet exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

GOOD = '[capture]\ninterfaces = ["lo"]\nspool = "/tmp/sluice-never-used"\n'
HOSTILE = {
    "size of 400 digits": GOOD + "rotate_size = " + "9" * 400 + "\n",
    "size string of 400 digits": GOOD + 'rotate_size = "' + "9" * 400 + '"\n',
    "arrays nested 5000 deep": GOOD + "filter = " + "[" * 5000 + "]" * 5000 + "\n",
    "float overflow": GOOD + "[supervisor]\nstall_timeout = 1e400\n",
    "int past float": GOOD + "[supervisor]\nstall_timeout = " + "9" * 400 + "\n",
    "odd bytes": None,  # bytes that are not UTF-8
    "NUL and control bytes": GOOD + "filter = \"a\x00\x7f\"\n",
}


def config_commands(path: Path) -> list[list[str]]:
    """Every command that reads a config file."""
    p = str(path)
    return [["config", "check", p], ["config", "show", "--config", p], ["status", "--config", p],
            ["supervise", "--config", p], ["nic", "check", "lo", "--config", p],
            ["nic", "tune", "lo", "--config", p]]


def sluice(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=60, **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_config_the_parser_chokes_on_is_one_line_from_every_command(tmp_path: Path, name: str) -> None:
    path = tmp_path / "sluice.toml"
    text = HOSTILE[name]
    if text is None:
        path.write_bytes(GOOD.encode() + b'host = "\xff\xfe\xc0"\n')
    else:
        path.write_text(text)
    for argv in config_commands(path):
        proc = sluice(argv)
        assert proc.returncode == 2, (argv, proc.returncode, proc.stderr[-500:])
        assert "Traceback" not in proc.stderr, (argv, proc.stderr[-800:])
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"sluice: config {path}"), (argv, proc.stderr[-500:])


@pytest.mark.parametrize("content", [
    b"{not json", b'{"writers": 5}', b'{"writers": [{"interface": "c0"}]}', b"[" * 100000 + b"]" * 100000,
    b'{"version": "0", "writers": [], "ts": "yesterday"}', b"\xff\xfe", b"",
    b'{"version": "0", "writers": [], "watchdogs": {"disk": {"success": true, "duration_seconds": 0, '
    b'"reading": {"path": 1}}}}', b'{"writers": [], "ts": 1e999}',
], ids=["torn", "writers not a list", "writer without fields", "nested", "ts not a number", "not utf-8",
        "empty", "disk reading without fields", "no version"])
def test_a_malformed_status_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "status.json"
    state.write_bytes(content)
    proc = sluice(["status", "--state", str(state)])
    assert proc.returncode == 1, proc.stderr[-800:]
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "not a sluice status file" in proc.stderr, proc.stderr[-500:]


def test_a_stale_status_fails_the_check_and_says_its_age(tmp_path: Path) -> None:
    import time

    state = tmp_path / "status.json"
    doc = {"writers": [], "ts": time.time() - 3600, "started": time.time() - 7200, "pid": 2**22 + 1,
           "state_interval": 1.0, "spool": str(tmp_path), "host": "h", "version": "0"}
    state.write_text(json.dumps(doc))
    stale = sluice(["status", "--state", str(state)])
    assert stale.returncode == 1 and "60min old: the supervisor is not running" in stale.stdout, stale
    assert "as of 60min ago" in stale.stdout
    state.write_text(json.dumps({**doc, "ts": time.time()}))
    fresh = sluice(["status", "--state", str(state)])
    assert fresh.returncode == 0 and "WARNING" not in fresh.stdout, fresh


def closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone: every write gets EPIPE."""
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["config", "--help"], ["config", "show", "--config", "CFG"],
    ["config", "check", "CFG"], ["status", "--state", "STATE"], ["status", "--state", "STATE", "--json"],
    ["nic", "show", "lo"], ["nic", "show", "lo", "--json"], ["lab", "--help"], ["run", "--help"],
], ids=lambda a: " ".join(a))
def test_output_into_a_closed_pipe_exits_quietly(tmp_path: Path, argv: list[str]) -> None:
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(GOOD)
    state = tmp_path / "status.json"
    import time
    state.write_text(json.dumps({"version": "0", "writers": [], "ts": time.time(), "pid": 1, "spool": "/x"}))
    argv = [str(cfg) if a == "CFG" else str(state) if a == "STATE" else a for a in argv]
    w = closed_pipe()
    try:
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", *argv], stdout=w, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, timeout=60)
    finally:
        os.close(w)
    assert proc.stderr == "", proc.stderr[-800:]
    # 141 as a program killed by SIGPIPE; argparse drops its own --help/--version output quietly.
    assert proc.returncode == (0 if "--help" in argv or "--version" in argv else 141)
