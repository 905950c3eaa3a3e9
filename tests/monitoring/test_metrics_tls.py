"""/metrics over TLS and behind basic auth (issue 17), configured in the Prometheus exporters'
web-config format, scraped by a real Prometheus: the right password over TLS is scraped, a wrong
password and plain HTTP are not. Certificates made by openssl, hashes by bcrypt, HTTP by curl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml

from appliance.lab import netns
from tests.conftest import REPO
from tests.monitoring.live import free_port, prometheus, wait_for
from tests.supervisor.running import Supervise, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

PASSWORD = "correct horse battery staple"


def self_signed(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "metrics.crt", workdir / "metrics.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=sluice-test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def web_config(workdir: Path) -> Path:
    self_signed(workdir)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    # htpasswd -B writes $2y$: the exporters' own examples use it, so one user has that form
    hashed_y = "$2y$" + bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=10)).decode()[4:]
    path = workdir / "web-config.yml"
    path.write_text("tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n"
                    f"basic_auth_users:\n  prometheus: '{hashed}'\n  other: '{hashed_y}'\n")
    return path


def curl(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(netns.exec_argv(ns, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                                               "%{http_code}", *args]), capture_output=True, text=True)


def test_prometheus_scrapes_metrics_over_tls_with_basic_auth_only(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    port = free_port(veth_ns.ns)
    web = web_config(tmp_path)
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool, listen=f"127.0.0.1:{port}")
    cfg.write_text(cfg.read_text().replace("[metrics]\n", f'[metrics]\nweb_config = "{web}"\n'))
    ca = tmp_path / "metrics.crt"
    url = f"https://127.0.0.1:{port}/metrics"
    with Supervise(veth_ns.ns, cfg, spool):
        # curl first: the answers the scrapes below rely on
        assert curl(veth_ns.ns, "--cacert", str(ca), "-u", f"prometheus:{PASSWORD}", url).stdout == "200"
        assert curl(veth_ns.ns, "--cacert", str(ca), "-u", "other:other", url).stdout == "200"
        assert curl(veth_ns.ns, "--cacert", str(ca), "-u", "prometheus:wrong", url).stdout == "401"
        assert curl(veth_ns.ns, "--cacert", str(ca), url).stdout == "401"
        plain = curl(veth_ns.ns, "-u", f"prometheus:{PASSWORD}", f"http://127.0.0.1:{port}/metrics")
        assert plain.stdout != "200"
        jobs = [{"job_name": job, "scrape_interval": "1s", "scheme": scheme, "tls_config": {"ca_file": str(ca)},
                 "basic_auth": {"username": "prometheus", "password": pw},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, scheme, pw in (("good", "https", PASSWORD), ("wrong_password", "https", "wrong"),
                                        ("plain_http", "http", PASSWORD))]
        config = yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                 "scrape_configs": jobs})
        with prometheus(veth_ns.ns, tmp_path / "prom", config) as prom:
            def scraped() -> dict[str, str] | None:
                ups = {r["metric"]["job"]: r["value"][1] for r in prom.vector("up")}
                return ups if len(ups) == 3 else None
            ups = wait_for(scraped, 30, "three scrape results")
            assert ups == {"good": "1", "wrong_password": "0", "plain_http": "0"}, ups
            series = wait_for(lambda: prom.vector('sluice_capture_packets_total{job="good"}'), 15, "sluice metrics")
            assert series[0]["metric"]["interface"] == veth_ns.rx
            assert not prom.vector('sluice_capture_packets_total{job!="good"}')


@pytest.mark.parametrize(("body", "message"), [
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "is not a file"),
    ("basic_auth_users:\n  prometheus: plaintext\n", "not a bcrypt hash"),
    ("http_server_config:\n  http2: false\n", "http_server_config is not supported"),
    ("tls_server_config:\n  cert_file: x.crt\n", "is not a file"),
])
def test_a_bad_web_config_is_one_line_and_exit_2(tmp_path: Path, body: str, message: str) -> None:
    web = tmp_path / "web-config.yml"
    web.write_text(body)
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["c0"]\nspool = "{tmp_path}"\n[metrics]\nweb_config = "{web}"\n')
    p = subprocess.run([sys.executable, "-m", "appliance.cli", "config", "check", str(cfg)], capture_output=True,
                       text=True, cwd=REPO)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
