"""sluice-pcap as an operator of tcpdump and mergecap expects it (issue 18): --version, merge -w,
a complete --help per command on a box without the README, and usages that say what parses."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import SLUICE_PCAP
from tests.pcaptool.pcapfiles import parse_pcap, run
from tests.pcaptool.test_fidelity import T0, _pcap, _udp_frame

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["info", "check", "repair", "dedup", "merge", "flows", "anonymize", "convert", "index", "pick"]


def test_version_is_the_project_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    proc = run("--version", check=True)
    assert proc.stdout == f"sluice-pcap {version}\n"


def test_merge_takes_mergecaps_w(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    f = _udp_frame(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    a.write_bytes(_pcap([(T0, 1, f)]))
    b.write_bytes(_pcap([(T0, 2, f)]))
    run("merge", "-w", tmp_path / "m.pcap", a, b, check=True)
    assert [r[1] for r in parse_pcap((tmp_path / "m.pcap").read_bytes()).records] == [1, 2]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_names_every_option_the_command_parses(cmd: str) -> None:
    helptext = run(cmd, "--help", check=True).stdout
    assert helptext.startswith(f"usage: sluice-pcap {cmd}")
    assert "README" not in helptext  # complete on a box where no README is installed
    # The options the command itself names in its usage error (what its parser accepts).
    proc = subprocess.run([str(SLUICE_PCAP), cmd, "--no-such-option"], capture_output=True, text=True)
    assert proc.returncode == 2
    for opt in set(re.findall(r"--[a-z][a-z-]+", proc.stderr)) - {"--no-such-option"}:
        assert opt in helptext, f"{cmd} --help does not explain {opt}"


def test_flows_usage_says_format_is_optional() -> None:
    top = run("--help", check=True).stdout
    line = next(x for x in top.splitlines() if "sluice-pcap flows" in x)
    assert "[--format csv|ipfix]" in line
