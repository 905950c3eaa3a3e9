"""The Prometheus rules: promtool accepts them and their unit tests pass, every alert is complete
(severity, summary, description, runbook) and tested both ways, and every metric they read exists."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.conftest import REPO, require_tool
from tests.monitoring.promql import documented_metrics, is_builtin, metric_names

PROM = REPO / "monitoring" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_SECTIONS = ("## What it means", "## How to confirm", "## What to do", "## How it resolves")


def load_rules() -> list[dict]:
    rules: list[dict] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def alert_rules() -> list[dict]:
    return [r for r in load_rules() if "alert" in r]


def alert_names() -> list[str]:
    return sorted({r["alert"] for r in alert_rules()})


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    assert RULE_FILES, "no rule files"
    proc = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules() -> None:
    promtool = require_tool("promtool")
    proc = subprocess.run([promtool, "test", "rules", *map(str, TEST_FILES)],
                          capture_output=True, text=True, timeout=300, cwd=PROM / "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(TEST_FILES)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_is_complete(rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Sluice[A-Z][A-Za-z]+", name), "alert names are SluiceCamelCase"
    assert rule["labels"]["severity"] in ("critical", "warning")
    notes = rule["annotations"]
    assert notes["summary"].strip().endswith(".")
    # A description without a template shows no values.
    assert "{{" in notes["description"], "the description must show values or labels"
    assert notes["runbook_url"].endswith(f"/docs/runbooks/{name}.md")
    runbook = RUNBOOKS / f"{name}.md"
    assert runbook.is_file(), f"missing runbook {runbook}"
    text = runbook.read_text()
    assert text.startswith(f"# {name}\n")
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{runbook.name} lacks '{section}'"


def test_no_runbook_without_an_alert_and_the_index_lists_them_all() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    assert pages == set(alert_names())
    index = (RUNBOOKS / "README.md").read_text()
    for name in alert_names():
        assert f"[{name}]({name}.md)" in index


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alert_names()) - fires == set(), "alerts never tested firing"
    assert set(alert_names()) - quiet == set(), "alerts never tested staying quiet"


def test_rules_read_only_documented_metrics() -> None:
    documented = documented_metrics(REPO / "monitoring" / "METRICS.md")
    assert len(documented) > 30
    recorded = {r["record"] for r in load_rules() if "record" in r}
    unknown = set()
    for rule in load_rules():
        for name in metric_names(rule["expr"]):
            if name not in documented and name not in recorded and not is_builtin(name):
                unknown.add(name)
    assert unknown == set(), f"metrics not in METRICS.md: {sorted(unknown)}"
