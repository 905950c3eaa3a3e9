"""`sluice extract` (and the other light commands) start with only what they use: an extract piped
into tcpdump pays Python's start-up for every query, and the bench against the peer pipeline
counts it (issue 14). The config module, the watchdogs and pyroute2 stay out of an extract, and so
do the standard modules it does not need (each costs milliseconds at every query)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import sys
from appliance import cli
sys.argv = ["sluice"] + sys.argv[1:]
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m in ("appliance.config", "appliance.watchdogs", "pyroute2", "pyarrow",
                                               "logging", "dataclasses", "typing", "inspect", "subprocess"))
print(",".join(heavy))
"""


def _loaded_by(*argv: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    return [m for m in proc.stdout.strip().splitlines()[-1].split(",") if m] if proc.stdout.strip() else []


def test_extract_loads_neither_the_config_nor_the_watchdogs(tmp_path) -> None:  # noqa: ANN001
    # a spool with no catalog: extract fails after parsing, having imported all it ever imports
    assert _loaded_by("extract", "--spool", str(tmp_path), "--from", "-1m", "--to", "now", "-o",
                      str(tmp_path / "x.pcap")) == []


def test_a_full_command_does_load_them(tmp_path) -> None:  # noqa: ANN001
    # the probe sees heavy modules when they are there: `sluice status` needs the config
    assert "appliance.config" in _loaded_by("status", "--config", str(tmp_path / "missing.toml"))
