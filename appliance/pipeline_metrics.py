"""The pipeline's progress for Prometheus: the pipeline process writes SPOOL/pipeline.json
(temporary name, rename) after every step; the supervisor reads it into its snapshot
(`pipeline`) and its exporter renders these families, so one `/metrics` serves both.

Per step: backlog (files the step still has to do), bytes and seconds of work done (their rates
give bytes/s), last success (unix time), failures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

STATE_FILE = "pipeline.json"


def read_state(spool: str | os.PathLike[str]) -> dict[str, Any] | None:
    """SPOOL/pipeline.json, or None when no pipeline ever ran (or it is unreadable)."""
    try:
        doc = json.loads(Path(spool, STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("steps"), dict) else None


def write_state(spool: Path, doc: dict[str, Any]) -> None:
    tmp = spool / f".{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, sort_keys=True) + "\n")
    os.replace(tmp, spool / STATE_FILE)


def families(state: dict[str, Any] | None) -> list[Metric]:
    if not state:
        return []
    backlog = GaugeMetricFamily("sluice_pipeline_backlog_files", "closed files this step still has to do",
                                labels=["step"])
    nbytes = CounterMetricFamily("sluice_pipeline_step_bytes", "bytes of input this step has processed",
                                 labels=["step"])
    seconds = CounterMetricFamily("sluice_pipeline_step_seconds", "seconds this step has worked", labels=["step"])
    done = CounterMetricFamily("sluice_pipeline_step_files", "files this step has done", labels=["step"])
    failures = CounterMetricFamily("sluice_pipeline_step_failures", "times this step failed on a file",
                                   labels=["step"])
    last = GaugeMetricFamily("sluice_pipeline_step_last_success_timestamp_seconds",
                             "unix time this step last succeeded on a file (0: never)", labels=["step"])
    for step, s in sorted(state["steps"].items()):
        backlog.add_metric([step], s.get("backlog", 0))
        nbytes.add_metric([step], s.get("bytes_total", 0))
        seconds.add_metric([step], s.get("seconds_total", 0.0))
        done.add_metric([step], s.get("files_total", 0))
        failures.add_metric([step], s.get("failures_total", 0))
        last.add_metric([step], s.get("last_success", 0.0))
    heartbeat = GaugeMetricFamily("sluice_pipeline_last_pass_timestamp_seconds",
                                  "unix time the pipeline last finished a pass over the catalog")
    heartbeat.add_metric([], state.get("last_pass", 0.0))
    return [backlog, nbytes, seconds, done, failures, last, heartbeat]
