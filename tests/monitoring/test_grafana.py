"""Grafana dashboards as code: the checked-in JSON is the generator's output, every query reads
known metrics and follows the dashboard's variables, and the provisioning files point at them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.monitoring.dashboards import GRAFANA, as_promql, load_generator
from tests.monitoring.promql import documented_metrics, is_builtin, metric_names
from tests.monitoring.test_rules import load_rules

GEN = load_generator()
MODELS = {name: GEN.to_json(build()) for name, build in GEN.DASHBOARDS.items()}


def test_checked_in_json_is_the_generators_output() -> None:
    proc = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name, build in GEN.DASHBOARDS.items():
        assert (GRAFANA / "dashboards" / name).read_text() == GEN.render(build())


def test_check_mode_catches_a_hand_edited_dashboard(tmp_path) -> None:  # noqa: ANN001
    assert GEN.main(["--out", str(tmp_path)]) == 0
    edited = tmp_path / "sluice-box.json"
    edited.write_text(edited.read_text().replace("Packets per second", "Packets"))
    proc = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "sluice-box.json" in proc.stderr


def test_fleet_and_box_dashboards_exist_with_their_variables() -> None:
    fleet, box = MODELS["sluice-fleet.json"], MODELS["sluice-box.json"]
    assert {fleet["uid"], box["uid"]} == {"sluice-fleet", "sluice-box"}
    fleet_vars = {v["name"] for v in fleet["templating"]["list"]}
    box_vars = {v["name"] for v in box["templating"]["list"]}
    assert fleet_vars == {"datasource", "instance"}
    assert box_vars == {"datasource", "instance", "interface"}
    fleet_titles = {p["title"] for p in fleet["panels"]}
    assert {"Boxes", "Capture rate", "Capture loss", "Clock offset", "Retention achieved"} <= fleet_titles
    box_titles = {p["title"] for p in box["panels"]}
    assert {"Packets per second", "Drops per second", "Ring and buffer fill", "Spool space",
            "Clock offset and max error", "Tuning drift", "RAID members"} <= box_titles


@pytest.mark.parametrize("name", sorted(MODELS))
def test_panels_have_unique_ids_and_fit_the_grid(name: str) -> None:
    panels = MODELS[name]["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_query_follows_the_box_variable_and_reads_known_metrics(name: str) -> None:
    documented = documented_metrics(REPO / "monitoring" / "METRICS.md")
    recorded = {r["record"] for r in load_rules() if "record" in r}
    exprs = list(GEN.expressions(MODELS[name]))
    assert len(exprs) >= 10
    for expr in exprs:
        if not expr.startswith("label_values(up"):
            assert '$instance"' in expr, f"query ignores the box selection: {expr}"
        for metric in metric_names(as_promql(expr)):
            assert metric in documented or metric in recorded or is_builtin(metric), \
                f"{name}: {metric} is not in METRICS.md nor a recording rule: {expr}"


def test_every_documented_metric_is_on_a_dashboard() -> None:
    shown = set()
    for model in MODELS.values():
        for expr in GEN.expressions(model):
            shown |= metric_names(as_promql(expr))
    for rule in load_rules():
        if "record" in rule and rule["record"] in shown:
            shown |= metric_names(rule["expr"])
    missing = documented_metrics(REPO / "monitoring" / "METRICS.md") - shown
    assert missing == set(), f"metrics on no dashboard: {sorted(missing)}"


def test_provisioning_points_at_the_generated_dashboards() -> None:
    prov = GRAFANA / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "sluice.yml").read_text())["datasources"]
    assert [d["type"] for d in ds] == ["prometheus"]
    providers = yaml.safe_load((prov / "dashboards" / "sluice.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    # The Ansible role copies monitoring/grafana/dashboards/*.json there.
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards/sluice"
    for model in MODELS.values():
        json.dumps(model)
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}"
