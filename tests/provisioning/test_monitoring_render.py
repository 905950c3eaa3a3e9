"""monitoring_server's Prometheus config, rendered from the example inventory, is accepted by
promtool and scrapes every capture box under its inventory name."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.provisioning.chroot import PROVISIONING, have_tools, run_playbook

pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))
HERE = Path(__file__).resolve().parent


def test_prometheus_config_scrapes_every_capture_box(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `make test` installs prometheus via deps/apt")
    result = run_playbook(PROVISIONING / "inventory" / "hosts.yml", {"render_dir": str(tmp_path)},
                          playbook=HERE / "render_prometheus.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    rendered = tmp_path / "prometheus.yml"
    check = subprocess.run([promtool, "check", "config", "--syntax-only", str(rendered)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(rendered.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {sc["labels"]["instance"]: sc["targets"] for sc in jobs["sluice"]["static_configs"]}
    assert targets == {
        "cap-ams-01": ["198.51.100.21:9750"],
        "cap-fra-01": ["192.0.2.11:9750"],
        "cap-fra-02": ["192.0.2.12:9750"],
    }
    assert "node" not in jobs
    assert config["rule_files"] == ["/etc/prometheus/rules/sluice/*.yml"]
