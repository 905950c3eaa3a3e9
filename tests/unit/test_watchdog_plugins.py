"""The watchdog interface: every module registers itself with its families, the supervisor runs
each through one wrapper, and a failed check drops its reading instead of showing a stale one."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from appliance import config
from appliance.metrics import MetricsServer
from appliance.snapshot import Snapshot, snapshot_from_json, snapshot_to_json
from appliance.status import format_status
from appliance.supervisor import Supervisor
from appliance.watchdogs import Watchdog, load_all
from tests.conftest import REPO

FIX = REPO / "tests" / "fixtures"
MODULES = sorted(p.stem for p in (REPO / "appliance" / "watchdogs").glob("*.py") if p.stem != "__init__")


def make_supervisor(tmp_path: Path, spool: Path) -> Supervisor:
    cfg = config.loads(f"""
[capture]
interfaces = ["lo"]
spool = "{spool}"
[watchdogs]
mdstat = "{FIX}/mdstat/degraded_raid5.txt"
sys_block = "{FIX}/sysblock"
smart = false
[nic]
tune = false
[metrics]
listen = "127.0.0.1:0"
""", "t")
    return Supervisor(cfg)


def scrape(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import urllib.request

    server = MetricsServer(lambda: snapshot)
    port = server.start("127.0.0.1", 0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.stop()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body) for s in f.samples}


def test_every_module_registers_a_complete_watchdog() -> None:
    registry = load_all()
    documented = set(re.findall(r"^\| `(sluice_\w+)` \| (?:gauge|counter) \|",
                                (REPO / "monitoring" / "METRICS.md").read_text(), re.M))
    modules = {cls.__module__.rsplit(".", 1)[1] for cls in registry.values()}
    assert modules == set(MODULES), "a module of appliance/watchdogs/ registers no watchdog"
    families = []
    for name, cls in registry.items():
        assert issubclass(cls, Watchdog) and cls.name == name
        assert dataclasses.is_dataclass(cls.reading_type), name
        for f in cls.families:
            documented_name = f.name + ("_total" if f.kind == "counter" else "")
            assert documented_name in documented, f"{name}: {documented_name} is not in METRICS.md"
            families.append(f.name)
    assert len(families) == len(set(families)), "two watchdogs export the same family"


def test_a_failed_check_drops_its_reading_and_says_so(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    sup = make_supervisor(tmp_path, spool)
    for name in ("disk", "time", "raid", "nic"):
        assert sup.run_watchdog(name).success, name
    first = scrape(sup.build_snapshot())
    labels = (("path", str(spool)),)
    assert first[("sluice_disk_free_bytes", labels)] > 0
    assert first[("sluice_watchdog_success", (("watchdog", "disk"),))] == 1
    assert first[("sluice_watchdog_duration_seconds", (("watchdog", "disk"),))] >= 0
    assert first[("sluice_raid_degraded", (("array", "md127"),))] == 1
    # The spool disappears: statvfs fails. The next scrape has no disk reading at all.
    shutil.rmtree(spool)
    run = sup.run_watchdog("disk")
    assert not run.success and run.reading is None and "FileNotFoundError" in (run.error or "")
    snapshot = sup.build_snapshot()
    second = scrape(snapshot)
    assert ("sluice_disk_free_bytes", labels) not in second
    assert second[("sluice_watchdog_success", (("watchdog", "disk"),))] == 0
    assert second[("sluice_raid_degraded", (("array", "md127"),))] == 1  # the others are untouched
    doc = snapshot_to_json(snapshot)
    text = format_status(json.loads(json.dumps(doc)), now=doc["ts"])
    assert "disk: CHECK FAILED (FileNotFoundError" in text and "raid: md127 raid5 DEGRADED" in text


def test_the_status_file_reads_back_into_the_same_types(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    sup = make_supervisor(tmp_path, spool)
    for name in ("disk", "time", "raid", "nic"):
        sup.run_watchdog(name)
    snapshot = sup.build_snapshot()
    back = snapshot_from_json(json.loads(json.dumps(snapshot_to_json(snapshot))))
    assert back == snapshot
    assert type(back.watchdogs["raid"].reading).__name__ == "RaidReading"
    assert back.watchdogs["disk"].reading.full_eta_seconds == snapshot.watchdogs["disk"].reading.full_eta_seconds
