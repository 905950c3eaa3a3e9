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


def test_metrics_tls_and_basic_auth_render_on_both_sides(tmp_path: Path) -> None:
    """One set of inventory variables turns TLS and auth on for the boxes and their scraper."""
    import base64

    import bcrypt

    from appliance import webconfig

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    tls = {"sluice_metrics_tls_cert": "/controller/box.crt", "sluice_metrics_tls_key": "/controller/box.key",
           "sluice_metrics_tls_ca": "/controller/ca.crt", "sluice_metrics_auth_user": "prometheus",
           "sluice_metrics_auth_bcrypt": hashed, "sluice_metrics_auth_password": "s3cret",
           "render_dir": str(tmp_path)}
    for playbook in ("render_prometheus.yml", "render_web_config.yml"):
        result = run_playbook(PROVISIONING / "inventory" / "hosts.yml", tls, playbook=HERE / playbook)
        assert result.returncode == 0, result.stdout[-3000:]
    job = next(j for j in yaml.safe_load((tmp_path / "prometheus.yml").read_text())["scrape_configs"]
               if j["job_name"] == "sluice")
    assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": "/etc/prometheus/sluice-metrics-ca.crt"}
    assert job["basic_auth"] == {"username": "prometheus", "password": "s3cret"}
    # the box's file is what sluice reads: point it at real files and load it with sluice itself
    text = (tmp_path / "web-config.yml").read_text()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=box", "-keyout", str(tmp_path / "m.key"), "-out",
                    str(tmp_path / "m.crt")], check=True, capture_output=True)
    local = tmp_path / "local-web-config.yml"
    local.write_text(text.replace("/etc/sluice/metrics.crt", str(tmp_path / "m.crt"))
                     .replace("/etc/sluice/metrics.key", str(tmp_path / "m.key")))
    web = webconfig.load(local)
    assert web.tls and set(web.users) == {"prometheus"}
    assert web.authorized("Basic " + base64.b64encode(b"prometheus:s3cret").decode())
