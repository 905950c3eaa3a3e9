"""The example Alertmanager config in a real Alertmanager: alerts route by severity, a down box's
other alerts are inhibited, the critical level inhibits the warning, and the documented amtool
command silences a box for a maintenance window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.monitoring.live import WebhookSink, alertmanager, wait_for

AM_CONFIG = REPO / "monitoring" / "alertmanager" / "alertmanager.yml"


def test_config(sink_port: int) -> str:
    """The example config with test timings and its webhooks pointed at the sink."""
    doc = yaml.safe_load(AM_CONFIG.read_text())
    doc["route"].update(group_wait="1s", group_interval="1s")
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{sink_port}/{receiver['name']}"
    return yaml.safe_dump(doc)


test_config.__test__ = False  # a helper, not a test


def by_key(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(a["labels"]["alertname"], a["labels"]["instance"], a["labels"]["severity"]): a["status"]
            for a in alerts}


def test_routing_inhibition_and_maintenance_silence(tmp_path: Path) -> None:
    with WebhookSink() as sink, alertmanager(None, tmp_path, test_config(sink.port)) as am:
        def add(name: str, severity: str, **labels: str) -> None:
            am.amtool("alert", "add", name, f"severity={severity}", *(f"{k}={v}" for k, v in labels.items()),
                      "--annotation=summary=test")

        # box2 goes into maintenance first, with the command monitoring/README.md documents.
        am.amtool("silence", "add", "instance=box2", "--duration=2h", "--author=test",
                  "--comment=box2: disk swap")
        add("SluiceExporterDown", "critical", job="sluice", instance="box1")
        add("SluiceRaidDegraded", "critical", job="sluice", instance="box1", array="md0")
        add("SluiceRaidDegraded", "critical", job="sluice", instance="box2", array="md0")
        add("SluiceCaptureLoss", "warning", job="sluice", instance="box3", interface="span0")
        add("SluiceCaptureLoss", "critical", job="sluice", instance="box3", interface="span0")
        add("SluiceNoFileClosed", "warning", job="sluice", instance="box4", interface="span0")

        def processed() -> dict[tuple[str, str, str], dict[str, Any]] | None:
            got = by_key(am.alerts())
            done = len(got) == 6 and all(v["state"] != "unprocessed" for v in got.values())
            return got if done else None

        statuses = wait_for(processed, 30, "six processed alerts")
        # Box down: its RAID alert is inhibited by SluiceExporterDown, which itself stays active.
        assert statuses[("SluiceExporterDown", "box1", "critical")]["state"] == "active"
        raid1 = statuses[("SluiceRaidDegraded", "box1", "critical")]
        assert raid1["state"] == "suppressed" and raid1["inhibitedBy"], raid1
        # Maintenance: box2's alert is silenced, not inhibited.
        raid2 = statuses[("SluiceRaidDegraded", "box2", "critical")]
        assert raid2["state"] == "suppressed" and raid2["silencedBy"] and not raid2["inhibitedBy"], raid2
        # The critical level hides the warning level of the same alert and interface.
        assert statuses[("SluiceCaptureLoss", "box3", "critical")]["state"] == "active"
        assert statuses[("SluiceCaptureLoss", "box3", "warning")]["inhibitedBy"]
        assert statuses[("SluiceNoFileClosed", "box4", "warning")]["state"] == "active"

        # Critical pages, warning opens a ticket; nothing suppressed reaches anyone.
        wait_for(lambda: len(sink.alerts("/pager")) == 2 and sink.alerts("/ticket"), 30, "notifications")
        assert sink.alerts("/pager") == {("SluiceExporterDown", "box1"), ("SluiceCaptureLoss", "box3")}
        assert sink.alerts("/ticket") == {("SluiceNoFileClosed", "box4")}
        silences = am.amtool("silence", "query", "instance=box2")
        assert "box2: disk swap" in silences
