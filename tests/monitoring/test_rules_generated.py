"""The alert rules are rendered from one thresholds file: the checked-in rules are what
generate.py makes from the defaults, and a site's values reach every place they belong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, require_tool

PROM = REPO / "monitoring" / "prometheus"
GENERATE = PROM / "generate.py"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATE), *args], capture_output=True, text=True, timeout=60)


def test_checked_in_rules_are_the_rendering_of_the_defaults(tmp_path: Path) -> None:
    out = tmp_path / "alerts.yml"
    assert generate("--out", str(out)).returncode == 0
    assert out.read_text() == (PROM / "rules" / "alerts.yml").read_text(), "run monitoring/prometheus/generate.py"


def test_a_site_config_changes_thresholds_and_runbook_links(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('runbook_base_url = "https://wiki.example.net/sluice/"\nretention_days = 30\n'
                    "clock_offset_max_ms = 2\ndisk_full_within_hours = 12\n")
    out = tmp_path / "alerts.yml"
    proc = generate("--config", str(site), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "https://git.example.org" not in text and text.count("https://wiki.example.net/sluice/Sluice") >= 17
    assert "time() - sluice_spool_oldest_file_timestamp_seconds < 30 * 86400" in text and "promised 30 days." in text
    assert "abs(sluice_time_offset_seconds) > 0.002" in text and "more than 2ms." in text
    assert "[1h], 12 * 3600)" in text and "within 12 hours" in text
    assert "@{" not in text
    check = subprocess.run([require_tool("promtool"), "check", "rules", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_unknown_or_mistyped_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for body, words in (('retention_dayz = 30\n', "unknown key 'retention_dayz'"),
                        ('retention_days = "a week"\n', "retention_days must be a int")):
        site = tmp_path / "site.toml"
        site.write_text(body)
        proc = generate("--config", str(site), "--out", str(tmp_path / "x.yml"))
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert not (tmp_path / "x.yml").exists()
