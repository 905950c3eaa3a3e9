"""The exporter serves every metric of monitoring/METRICS.md, from the supervisor's real readings."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from appliance import config
from appliance.journal import Journal
from appliance.metrics import MetricsServer
from appliance.supervisor import Supervisor, backoff_delay
from appliance.watchdogs import WatchdogRun
from appliance.watchdogs.nic import DriftReading
from appliance.writer import WriterProcess

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"


def contract() -> dict[str, str]:
    """metric name -> type, from the tables of monitoring/METRICS.md."""
    text = (REPO / "monitoring" / "METRICS.md").read_text()
    rows = re.findall(r"^\| `((?:sluice|process)_\w+)` \| (\w+) \|", text, re.M)
    return dict(rows)


def scrape(port: int) -> dict[str, object]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f for f in text_string_to_metric_families(body)}


def test_every_contract_metric_is_exported(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    # A box that has had one update roll back (the state kept on its data partition).
    from appliance import update
    from appliance.watchdogs import update as update_wd
    paths = update.Paths(state=str(tmp_path / "update.json"), release=str(tmp_path / "release"),
                         cmdline=str(tmp_path / "cmdline"))
    update.UpdateState(last={"version": "2.0", "slot": "B", "result": "failed", "at": 1.0e9}, installs_total=1,
                       rollbacks_total=1).save(paths.state)
    monkeypatch.setattr(update_wd, "update_status", lambda: update.update_status(paths))
    cfg = config.loads(f"""
[capture]
interfaces = ["lo"]
spool = "{tmp_path}"
[watchdogs]
mdstat = "{FIX}/mdstat/degraded_raid5.txt"
sys_block = "{FIX}/sysblock"
[metrics]
listen = "127.0.0.1:0"
""", "t")
    sup = Supervisor(cfg)
    sup.journal = Journal(tmp_path / "journal.jsonl")
    # The pipeline service's progress file, as appliance.pipeline writes it after each step.
    from appliance import pipeline_metrics
    pipeline_metrics.write_state(tmp_path, {"last_pass": 1.0e9, "steps": {"backup": {
        "backlog": 3, "bytes_total": 4096, "seconds_total": 0.5, "files_total": 1, "last_success": 1.0e9}}})
    # A writer slot that has not run: its counters exist (zero) from the first scrape on.
    proc = WriterProcess(cfg, "lo", "/bin/false")
    from appliance.supervisor import WriterSlot
    sup.slots["lo"] = WriterSlot(proc)
    for name in ("disk", "time", "raid", "nic", "update", "pipeline"):
        assert sup.run_watchdog(name).success, name
    # What the drift watchdog reads after a driver reset of lo (tuning lo itself is refused).
    sup.runs["drift"] = WatchdogRun(True, 0.001, DriftReading({"lo": {"rx-usecs": True}}))
    sup.publish()
    server = MetricsServer(sup.snapshot)
    port = server.start("127.0.0.1", 0)
    try:
        fams = scrape(port)
    finally:
        server.stop()
    wanted = contract()
    assert len(wanted) >= 40
    for name, kind in wanted.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        assert base in fams, f"{name} missing from /metrics"
        assert fams[base].type == kind, name
    samples = {s.name: s for f in fams.values() for s in f.samples}
    assert samples["sluice_raid_degraded"].labels == {"array": "md127"} and samples["sluice_raid_degraded"].value == 1
    assert samples["sluice_disk_size_bytes"].labels == {"path": str(tmp_path)}
    assert samples["sluice_disk_size_bytes"].value > 0
    assert samples["sluice_capture_packets_total"].labels == {"interface": "lo"}
    assert samples["sluice_nic_link_up"].value == 1.0  # lo is up
    assert samples["sluice_build_info"].labels["version"]
    assert samples["sluice_update_last_succeeded"].labels == {"version": "2.0", "slot": "B"}
    assert samples["sluice_update_last_succeeded"].value == 0
    assert samples["sluice_update_rollbacks_total"].value == 1
    assert samples["sluice_update_info"].labels["slot"] == "none"
    assert samples["sluice_pipeline_backlog_files"].labels == {"step": "backup"}
    assert samples["sluice_pipeline_backlog_files"].value == 3
    assert samples["sluice_pipeline_step_bytes_total"].value == 4096
    # The same snapshot, as `sluice status` prints it from status.json.
    from appliance.status import format_status, load_state
    state = load_state(tmp_path / "status.json")
    text = format_status(state, now=state["ts"])
    assert "WARNING" not in text
    assert "raid: md127 raid5 DEGRADED (2/3 active, 0 failed, 0 spare, recovery " in text
    assert "nic: lo link up" in text and "tuning drift: rx-usecs" in text
    assert "release: " in text and "last update 2.0 failed" in text
    assert "lo         starting" not in text and "lo         DOWN" in text
    assert "WARNING: this status is 2min old" in format_status(state, now=state["ts"] + 120)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 10.0) for n in range(0, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
