"""The example Prometheus and Alertmanager configs: valid for the real tools, and Alertmanager
routes by severity."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO, require_tool

MON = REPO / "monitoring"
AM_CONFIG = MON / "alertmanager" / "alertmanager.yml"


def test_promtool_check_config() -> None:
    proc = subprocess.run([require_tool("promtool"), "check", "config", str(MON / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The config loads the rules next to it.
    assert "SUCCESS: 2 rule files found" in proc.stdout


def test_amtool_check_config() -> None:
    proc = subprocess.run([require_tool("amtool"), "check-config", str(AM_CONFIG)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inhibit rules" in proc.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (["severity=critical", "alertname=SluiceWriterDown"], "pager"),
    (["severity=warning", "alertname=SluiceCaptureLoss"], "ticket"),
    (["alertname=Watchdog"], "ticket"),
])
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    proc = subprocess.run([require_tool("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}",
                           *labels], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == receiver
