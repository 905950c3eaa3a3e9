"""A real Prometheus (Debian's `prometheus`) scrapes `sluice supervise` and serves its series."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import SLUICE_CAPTURE, require_tool
from tests.supervisor.running import Supervise, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

FREE_PORT = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"


def query(veth_ns, port: int, promql: str) -> list[dict]:  # noqa: ANN001
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}"
    # -f: while its storage starts, Prometheus answers 503 with a text body; that is "not yet".
    proc = veth_ns.run(["curl", "-fsS", "--max-time", "5", url], check=False)
    if proc.returncode != 0:
        return []
    doc = json.loads(proc.stdout)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_prometheus_scrapes_the_exporter(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    prometheus = require_tool("prometheus")
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool, extra="[nic]\ntune = false\n")
    # Frames tx0 -> rx0: echo requests to a neighbour that answers nothing (a static entry, no ARP).
    veth_ns.run(["ip", "addr", "add", "192.0.2.1/24", "dev", veth_ns.tx])
    veth_ns.run(["ip", "neigh", "add", "192.0.2.99", "lladdr", "02:00:00:00:00:99", "dev", veth_ns.tx])
    with Supervise(veth_ns.ns, cfg, spool) as sup:
        exporter_port = sup.state()["metrics_port"]
        prom_port = int(veth_ns.run([sys.executable, "-c", FREE_PORT]).stdout)
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: sluice\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n")
        with open(tmp_path / "prometheus.log", "wb") as log:
            prom = subprocess.Popen(veth_ns.argv([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                                  f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                                  f"--web.listen-address=127.0.0.1:{prom_port}"]),
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            veth_ns.run(["ping", "-c", "30", "-i", "0.01", "-W", "0.1", "192.0.2.99"], check=False)
            deadline = time.monotonic() + 60
            up: list[dict] = []
            packets: list[dict] = []
            while time.monotonic() < deadline:
                assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                up = query(veth_ns, prom_port, 'up{job="sluice"}')
                packets = query(veth_ns, prom_port, f'sluice_capture_packets_total{{interface="{veth_ns.rx}"}}')
                if up and packets and float(packets[0]["value"][1]) >= 30:
                    break
                time.sleep(0.5)
            assert up and up[0]["value"][1] == "1", up
            assert packets and float(packets[0]["value"][1]) >= 30, packets
            rate = query(veth_ns, prom_port, 'sluice_writer_up{job="sluice"}')
            assert rate and rate[0]["value"][1] == "1"
        finally:
            prom.terminate()
            prom.wait(30)
