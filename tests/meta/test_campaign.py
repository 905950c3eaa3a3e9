"""The campaign's git history after a few events: a note, a device config that changes (a
`sluice meta collect` pass commits), a maintenance window; a commit with nothing new adds none;
every step is a commit whose diff shows exactly that event."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.slow  # about 70 s on a loaded 2-core machine: eleven CLI runs
def test_history_after_a_few_events(tmp_path: Path) -> None:
    spool, device = tmp_path / "spool", tmp_path / "switch.conf"
    device.write_text("interface p1\n  mirror to span\n")
    windows = tmp_path / "windows.toml"
    windows.write_text("")
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["eth9"]\nspool = "{spool}"\nhost = "lab"\n'
                      f'[meta]\nmaintenance = "{windows}"\n[[meta.sources]]\nname = "switch"\nkind = "device"\n'
                      f'files = ["{device}"]\n')
    repo = spool / "campaign"
    first = sluice("campaign", "commit", "--config", str(config)).stdout.strip()
    assert len(first) == 40
    assert sluice("campaign", "commit", "--config", str(config)).stdout.strip() == "nothing changed"
    tools = (repo / "tools.txt").read_text()
    assert "sluice-capture: sluice-capture 0.1 sha256:" in tools and "dnspython 2.9.2" in tools
    assert "sluice-pcap: sluice-pcap 0.1.0 sha256:" in tools

    sluice("notes", "add", "--config", str(config), "moved the tap to port 7")
    sluice("campaign", "commit", "--config", str(config))
    assert "moved the tap to port 7" in git(repo, "show", "HEAD", "--", "notes.md")

    sluice("meta", "collect", "--config", str(config))  # first copy of the device: committed by the pass
    device.write_text("interface p1\n  mirror to span\ninterface p3\n  shutdown\n")
    sluice("meta", "collect", "--config", str(config))
    diff = git(repo, "show", "HEAD", "--", "meta/device/switch.txt")
    assert "+interface p3" in diff and "+  shutdown" in diff
    assert "meta_config_changed" in git(repo, "show", "HEAD", "--", "journal.jsonl")

    windows.write_text('[[window]]\nstart = "2026-12-01T22:00:00Z"\nend = "2026-12-01T23:00:00Z"\n'
                       'boxes = ["lab"]\nreason = "core switch reboot"\n')
    sluice("meta", "collect", "--config", str(config))
    last = git(repo, "show", "HEAD", "--stat")
    assert "config/maintenance.toml" in last and "meta/maintenance/windows.json" in last
    assert "core switch reboot" in git(repo, "show", "HEAD", "--", "journal.jsonl")

    subjects = git(repo, "log", "--format=%s").splitlines()
    assert len(subjects) == 5 and subjects[0].startswith("meta collect: ")
    assert git(repo, "status", "--porcelain") == ""
    log = sluice("campaign", "log", "--config", str(config)).stdout
    assert log.count("\ncommit ") + log.startswith("commit ") == 5
