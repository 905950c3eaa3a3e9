"""`make run`: the main job shows traffic on the SPAN port and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.lab import netns, topology
from tests.conftest import REPO

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _lab_id(output: str) -> str:
    match = re.search(r"^lab (\w+) up", output, re.M)
    assert match, output
    return match.group(1)


def _leftovers(lab_id: str) -> list[str]:
    """Anything of the lab still on the machine: namespaces, state, processes naming it."""
    found = [n for n in netns.list_namespaces() if n.startswith(f"{topology.NS_PREFIX}{lab_id}-")]
    if (topology.STATE_DIR / f"{lab_id}.json").exists():
        found.append("state file")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if lab_id in cmdline:
            found.append(f"process {proc.name}: {cmdline}")
    return found


def test_make_run_shows_span_traffic_and_tears_everything_down():
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "run", "SECONDS=20"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lab_id = _lab_id(proc.stdout)
    packets = [int(m) for m in re.findall(r"received (\d+) packets", proc.stdout)]
    assert packets and packets[-1] > 100, proc.stdout
    assert re.search(r"http [1-9]\d*, dns [1-9]\d*, ping [1-9]", proc.stdout), proc.stdout
    # The SPAN port's count is explained against the captured one, and the config path is given.
    split = re.search(r"of them (\d+) before the capture was up \(not captured, not loss\) and (\d+) while it ran",
                      proc.stdout)
    assert split and int(split.group(1)) + int(split.group(2)) == packets[-1], proc.stdout
    assert re.search(rf"captured \d+ of those {split.group(2)}: ", proc.stdout), proc.stdout
    config = re.search(r"^  config: (\S+sluice\.toml) ", proc.stdout, re.M)
    assert config and f"sluice status --config {config.group(1)}" in proc.stdout, proc.stdout
    assert f"lab {lab_id} removed" in proc.stdout
    assert _leftovers(lab_id) == []


def test_ctrl_c_during_run_still_tears_the_lab_down():
    sluice = str(REPO / ".venv" / "bin" / "sluice")
    proc = subprocess.Popen([sluice, "run", "--seconds", "120", "--status-interval", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    lab_id = _lab_id(first)
    while not proc.stdout.readline().startswith("["):  # the first status line: the capture is running
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    # the supervisor gets 30 s to close its files (Appliance.stop), then the lab goes: under a
    # loaded machine that is more than a minute
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 130, err
    assert f"lab {lab_id} removed" in out
    assert "Traceback" not in err
    assert _leftovers(lab_id) == []
