"""Monitoring against the real running system: `sluice supervise` on a lab's SPAN port, scraped
by a real Prometheus (and node_exporter) inside the lab's capture namespace.

(a) every dashboard expression runs without error and, where its metrics exist in the lab,
    returns data; every metric of METRICS.md is exported.
(b) end to end: the writer fails for good -> SluiceWriterDown reaches a real Alertmanager (its
    API lists it); the writer comes back -> the alert resolves.

The lab has no md RAID (this kernel has none) and no SMART disks: the RAID watchdog reads the
real /proc/mdstat and sysfs captures in tests/fixtures, SMART is off.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, SLUICE_CAPTURE, require_tool
from tests.monitoring.dashboards import as_promql, load_generator
from tests.monitoring.live import Prometheus, alertmanager, daemon, free_port, prometheus, wait_for
from tests.monitoring.promql import documented_metrics, metric_names
from tests.supervisor.running import Supervise

pytestmark = [pytest.mark.root, pytest.mark.netns]

RULES = REPO / "monitoring" / "prometheus" / "rules"
EXAMPLE_CONFIG = REPO / "monitoring" / "prometheus" / "prometheus.yml"
BOX = "127.0.0.1"  # the example config's relabelling: the target's host, without the port
FIXTURES = REPO / "tests" / "fixtures"
# Metrics the lab cannot have: no SMART disks to ask; no update has finished on the lab's machine
# (no /var/lib/sluice/update.json).
ABSENT_IN_LAB = {"sluice_smart_healthy", "sluice_update_last_succeeded", "sluice_update_last_timestamp_seconds"}
# Metrics whose producer this lab never runs: `sluice selftest` (SPOOL/selftest.json), the
# pipeline (SPOOL/pipeline.json) and the metadata collector (a node_exporter textfile).
ABSENT_UNTIL_PRODUCED = ("sluice_selftest_", "sluice_pipeline_", "sluice_meta_")

# sluice-capture, unless the test has told the writer to fail (recovery runs keep working).
WRAPPER = """#!/bin/sh
if [ -e "{flag}" ] && [ "$1" != "--recover" ]; then
    echo "sluice-capture: the test made this writer fail" >&2
    exit 1
fi
exec "{binary}" "$@"
"""


def supervisor_config(tmp_path: Path, lab: Any, binary: Path) -> Path:
    path = tmp_path / "sluice.toml"
    path.write_text(f"""
[capture]
interfaces = ["{lab.capture_if}"]
spool = "{tmp_path / 'spool'}"
host = "lab"
binary = "{binary}"
ring_mb = 8
buffer_mb = 16
rotate_seconds = 2
[metrics]
listen = "127.0.0.1:0"
[supervisor]
stats_interval = 0.5
stall_timeout = 5
backoff_initial = 0.5
backoff_max = 2
stop_timeout = 10
state_interval = 0.5
[watchdogs]
interval = 1
smart = false
span_dead_seconds = 5
mdstat = "{FIXTURES / 'mdstat' / 'degraded_raid5.txt'}"
sys_block = "{FIXTURES / 'sysblock'}"
[nic]
tune = true
check_interval = 1
""")
    return path


def prometheus_config(exporter_port: int, node_port: int, rule_files: list[Path], am_port: int | None) -> str:
    """monitoring/prometheus/prometheus.yml itself, pointed at this lab: its jobs and relabelling
    (instance = host without port, shared by the sluice and node jobs), 1 s intervals."""
    doc = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    doc["global"].update(scrape_interval="1s", evaluation_interval="1s")
    doc["rule_files"] = [str(p) for p in rule_files]
    ports = {"sluice": exporter_port, "node": node_port}
    jobs = [job for job in doc["scrape_configs"] if job["job_name"] in ports]
    for job in jobs:
        job.pop("file_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    doc["scrape_configs"] = jobs
    if am_port is None:
        doc.pop("alerting", None)
    else:
        doc["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
    return yaml.safe_dump(doc)


def fast_rules(tmp_path: Path) -> Path:
    """A copy of the alert rules whose `for:` is 1s, so alerts fire within seconds."""
    doc = yaml.safe_load((RULES / "alerts.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path = tmp_path / "alerts-fast.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@contextmanager
def box(lab: Any, tmp_path: Path, rule_files: list[Path], am_port: int | None = None) -> Iterator[
        tuple[Supervise, Prometheus, Path]]:
    """The supervisor (writer behind a wrapper the test can make fail), node_exporter, Prometheus
    and steady ping traffic across the mirrored switch, all in or through the lab."""
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    flag = tmp_path / "writer-must-fail"
    wrapper = tmp_path / "sluice-capture"
    wrapper.write_text(WRAPPER.format(flag=flag, binary=SLUICE_CAPTURE))
    wrapper.chmod(0o755)
    cfg = supervisor_config(tmp_path, lab, wrapper)
    ns = lab.capture_ns
    node_port = free_port(ns)
    pinger = subprocess.Popen(lab.argv(lab.hosts["h1"].ns, ["ping", "-n", "-q", "-i", "0.1",
                                                             lab.hosts["h2"].ipv4]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Supervise(ns, cfg, tmp_path / "spool") as sup, \
                daemon(ns, [require_tool("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{node_port}"],
                       tmp_path / "node.log"), \
                prometheus(ns, tmp_path / "prom",
                           prometheus_config(sup.state()["metrics_port"], node_port, rule_files, am_port)) as prom:
            wait_for(lambda: prom.vector(f'up{{job="sluice",instance="{BOX}"}} == 1')
                     and prom.vector(f'up{{job="node",instance="{BOX}"}} == 1'), 30, "both exporters scraped")
            yield sup, prom, flag
    finally:
        pinger.send_signal(signal.SIGINT)
        pinger.wait(10)


def test_dashboard_queries_run_on_a_real_prometheus_scraping_the_supervisor(lab, tmp_path: Path) -> None:  # noqa: ANN001
    generator = load_generator()
    with box(lab, tmp_path, sorted(RULES.glob("*.yml"))) as (sup, prom, _flag):
        # Rates need two scrapes, a closed file needs a rotation (every 2 s), the recording rules
        # one evaluation after that.
        wait_for(lambda: prom.vector("instance_interface:sluice_capture_packets:rate5m > 0")
                 and prom.vector("time() - sluice_writer_newest_file_timestamp_seconds < 60")
                 and prom.vector("rate(node_cpu_seconds_total[1m])"), 60, "traffic, files and rates")

        # The drift metric has a series per setting that drifted once: turn GRO back on by hand
        # and the supervisor notices (and re-tunes).
        lab.exec(lab.capture_ns, ["ethtool", "-K", lab.capture_if, "gro", "on"])
        wait_for(lambda: prom.vector("count(sluice_nic_tuning_drift)"), 30, "a tuning drift series")

        exported = {m for m in documented_metrics(REPO / "monitoring" / "METRICS.md")
                    if prom.vector(f"count({m})")}
        missing = documented_metrics(REPO / "monitoring" / "METRICS.md") - exported
        assert {m for m in missing if not m.startswith(ABSENT_UNTIL_PRODUCED)} == ABSENT_IN_LAB

        checked = 0
        for name, build in generator.DASHBOARDS.items():
            for expr in generator.expressions(generator.to_json(build())):
                promql = as_promql(expr)
                doc = prom.query(promql)
                assert doc["status"] == "success", f"{name}: {expr}: {doc}"
                metrics = metric_names(promql)
                # A filter (`== 1`) may rightly select nothing in a healthy lab.
                may_be_empty = (bool(metrics & ABSENT_IN_LAB)
                                or any(m.startswith(ABSENT_UNTIL_PRODUCED) for m in metrics)
                                or re.search(r"[=!<>]=? *\d+ *$", promql))
                if not may_be_empty:
                    assert doc["data"]["result"], f"{name}: no data for {promql}"
                checked += 1
        assert checked >= 60


def alert_states(am_alerts: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [a for a in am_alerts if a["labels"]["alertname"] == name]


def test_writer_down_reaches_alertmanager_and_resolves(lab, tmp_path: Path) -> None:  # noqa: ANN001
    ns = lab.capture_ns
    am_config = (REPO / "monitoring" / "alertmanager" / "alertmanager.yml").read_text()
    with alertmanager(ns, tmp_path / "am", am_config) as am, \
            box(lab, tmp_path, [RULES / "recording.yml", fast_rules(tmp_path)], am.port) as (sup, prom, flag):
        wait_for(lambda: prom.vector('sluice_writer_up{instance="127.0.0.1"} == 1'), 30, "writer up in Prometheus")
        # The RAID watchdog reads a degraded RAID5 capture: that alert goes all the way through.
        raid = wait_for(lambda: alert_states(am.alerts(), "SluiceRaidDegraded"), 60,
                        "SluiceRaidDegraded in Alertmanager")
        assert raid[0]["labels"]["array"] == "md127" and raid[0]["labels"]["instance"] == BOX
        # A healthy capture path raises none of its alerts, even with every `for:` at 1 s.
        firing = {a["labels"]["alertname"] for a in prom.alerts()}
        assert not firing & {"SluiceWriterDown", "SluiceWriterDiskError", "SluiceCaptureLoss", "SluiceNicLinkDown",
                             "SluiceDiskReadOnly", "SluiceDiskAlmostFull", "SluiceExporterDown"}, firing
        assert not alert_states(am.alerts(), "SluiceWriterDown")

        # The writer fails for good: killed, and every restart exits 1.
        flag.touch()
        os.kill(sup.state()["writers"][0]["pid"], signal.SIGKILL)
        firing = wait_for(lambda: alert_states(am.alerts(), "SluiceWriterDown"), 60,
                          "SluiceWriterDown in Alertmanager")
        alert = firing[0]
        assert alert["labels"]["instance"] == BOX and alert["labels"]["interface"] == lab.capture_if
        assert alert["labels"]["severity"] == "critical"
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks/SluiceWriterDown.md")
        assert prom.vector("sluice_writer_restarts_total > 0")
        # The box is still scraped, so nothing inhibits the page.
        assert not alert_states(am.alerts(), "SluiceExporterDown")

        # The writer comes back at the supervisor's next restart: the alert resolves.
        flag.unlink()
        wait_for(lambda: prom.vector('sluice_writer_up{instance="127.0.0.1"} == 1'), 60, "writer up again")
        wait_for(lambda: not alert_states(am.alerts(), "SluiceWriterDown"), 60,
                 "SluiceWriterDown resolved in Alertmanager")
        assert not [a for a in prom.alerts() if a["labels"]["alertname"] == "SluiceWriterDown"]
