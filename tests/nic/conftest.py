"""Helpers for the NIC tests: run `sluice nic` or library code inside a test's own namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import netns as pyroute2_netns

from appliance.lab import netns

REPO = Path(__file__).resolve().parents[2]
INTERRUPTS_FIXTURE = REPO / "tests" / "fixtures" / "interrupts" / "ixgbe-mlx5-8cpu.txt"


def sluice_nic(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`sluice nic ARGS` run as its own process inside namespace ns (as an operator would)."""
    return netns.run_in(ns, [sys.executable, "-m", "appliance.cli", "nic", *args], check=False,
                        cwd=REPO)


def sluice_nic_json(ns: str, *args: str) -> tuple[int, dict]:
    proc = sluice_nic(ns, *args, "--json")
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def ethtool_features(ns: str, ifname: str) -> dict[str, str]:
    """`ethtool -k` read by the real binary: feature -> "on"/"off" (an independent reader)."""
    out = netns.run_in(ns, ["ethtool", "-k", ifname]).stdout
    feats: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        name, sep, value = line.strip().partition(":")
        if sep:
            feats[name] = value.split()[0]
    return feats


@contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run library code of this process in namespace ns, and always come back."""
    pyroute2_netns.pushns(ns)
    try:
        yield
    finally:
        pyroute2_netns.popns()
