"""A real scrape of a running `sluice supervise` (in a network namespace of its own, capturing
its loopback) follows Prometheus' conventions (`promtool check metrics` says nothing) and
exports exactly the metrics monitoring/METRICS.md lists."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.supervise import Supervise
from tests.conftest import REPO, SLUICE_CAPTURE, require_tool, unique_name

pytestmark = [pytest.mark.root, pytest.mark.netns]
FIX = REPO / "tests" / "fixtures"


def documented(always: bool = False) -> set[str]:
    """The metrics METRICS.md lists; always=True: without those it says are absent until an event."""
    rows = re.findall(r"^\| `(sluice_\w+)` \|(.*)$", (REPO / "monitoring" / "METRICS.md").read_text(), re.M)
    return {name for name, rest in rows if not (always and "absent" in rest)}


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ns = unique_name("scr")
    netns.add_namespace(ns)
    tmp = tmp_path_factory.mktemp("scrape")
    (tmp / "spool").mkdir()
    cfg = tmp / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["lo"]\nspool = "{tmp / "spool"}"\nbinary = "{SLUICE_CAPTURE}"\n'
                   f'[watchdogs]\nmdstat = "{FIX}/mdstat/degraded_raid5.txt"\nsys_block = "{FIX}/sysblock"\n'
                   '[metrics]\nlisten = "127.0.0.1:9750"\n')
    sup = Supervise(ns, cfg, tmp / "spool")
    try:
        netns.ip("-n", ns, "link", "set", "lo", "up")
        sup.start(wait_up=False)
        body = ""
        deadline = time.monotonic() + 30
        # Ready when the writer has sent stats: its up gauge is 1.
        while time.monotonic() < deadline and 'sluice_writer_up{interface="lo"} 1.0' not in body:
            got = netns.run_in(ns, ["curl", "-sf", "http://127.0.0.1:9750/metrics"], check=False)
            body = got.stdout if got.returncode == 0 else ""
            if not sup.running():
                break
            time.sleep(0.2)  # polling /metrics: it has no way to push
        assert 'sluice_writer_up{interface="lo"} 1.0' in body, sup.stderr() if not sup.running() else body
        yield body
    finally:
        sup.stop()
        netns.kill_all_in(ns)
        netns.delete_namespace(ns)


def test_promtool_check_metrics_is_clean(scrape: str) -> None:
    proc = subprocess.run([require_tool("promtool"), "check", "metrics"], input=scrape, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_the_scrape_exports_exactly_the_documented_metrics(scrape: str) -> None:
    exported = set(re.findall(r"^# TYPE (sluice_\w+) \w+", scrape, re.M))
    assert exported - documented() == set(), "exported but not in METRICS.md"
    assert documented(always=True) - exported == set(), "in METRICS.md but not exported"


def test_times_are_timestamps_not_ages(scrape: str) -> None:
    assert "_age_seconds" not in scrape
    newest = re.search(r'^sluice_writer_newest_file_timestamp_seconds\{interface="lo"\} (\S+)', scrape, re.M)
    assert newest is not None and float(newest.group(1)) == 0.0  # no file closed yet
    speed = re.search(r'^sluice_nic_speed_bytes_per_second\{interface="lo"\} (\S+)', scrape, re.M)
    assert speed is not None and float(speed.group(1)) >= 0
    assert Path(REPO / "monitoring" / "METRICS.md").read_text().count("_timestamp_seconds") >= 2
