"""Pipeline watchdog: the post-capture pipeline's progress (SPOOL/pipeline.json, written by
`sluice pipeline` after every step: appliance/pipeline_metrics.py), exported as sluice_pipeline_*
with the label `step` (docs/pipeline.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance.config import Config
from appliance.pipeline_metrics import read_state
from appliance.watchdogs import Context, Family, Sample, Watchdog, register


@dataclass
class PipelineStepReading:
    backlog: int = 0  # closed files this step still has to do
    bytes_total: int = 0
    seconds_total: float = 0.0
    files_total: int = 0
    failures_total: int = 0
    last_success: float = 0.0  # unix time (0: never)


@dataclass
class PipelineReading:
    ran: bool  # False until the pipeline first wrote its progress: no sluice_pipeline_* samples
    last_pass: float = 0.0
    steps: dict[str, PipelineStepReading] = field(default_factory=dict)


# (family, key of PipelineStepReading) for the per-step samples.
STEP_SAMPLES = (
    ("sluice_pipeline_backlog_files", "backlog"),
    ("sluice_pipeline_step_bytes", "bytes_total"),
    ("sluice_pipeline_step_seconds", "seconds_total"),
    ("sluice_pipeline_step_files", "files_total"),
    ("sluice_pipeline_step_failures", "failures_total"),
    ("sluice_pipeline_step_last_success_timestamp_seconds", "last_success"),
)


def _step(doc: dict[str, Any]) -> PipelineStepReading:
    return PipelineStepReading(int(doc.get("backlog", 0)), int(doc.get("bytes_total", 0)),
                               float(doc.get("seconds_total", 0.0)), int(doc.get("files_total", 0)),
                               int(doc.get("failures_total", 0)), float(doc.get("last_success", 0.0)))


@register
class PipelineWatchdog(Watchdog[PipelineReading]):
    name = "pipeline"
    reading_type = PipelineReading
    families = (
        Family("sluice_pipeline_backlog_files", "gauge", "closed files this step still has to do", ("step",)),
        Family("sluice_pipeline_step_bytes", "counter", "bytes of input this step has processed", ("step",)),
        Family("sluice_pipeline_step_seconds", "counter", "seconds this step has worked", ("step",)),
        Family("sluice_pipeline_step_files", "counter", "files this step has done", ("step",)),
        Family("sluice_pipeline_step_failures", "counter", "times this step failed on a file", ("step",)),
        Family("sluice_pipeline_step_last_success_timestamp_seconds", "gauge",
               "unix time this step last succeeded on a file (0: never)", ("step",)),
        Family("sluice_pipeline_last_pass_timestamp_seconds", "gauge",
               "unix time the pipeline last finished a pass over the catalog"),
    )

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval)

    def check(self, ctx: Context) -> PipelineReading:
        state = read_state(ctx.cfg.spool)
        if state is None:
            return PipelineReading(False)
        return PipelineReading(True, float(state.get("last_pass", 0.0)),
                               {step: _step(s) for step, s in sorted(state["steps"].items())})

    @classmethod
    def samples(cls, reading: PipelineReading) -> Iterable[Sample]:
        if not reading.ran:
            return
        for family, key in STEP_SAMPLES:
            for step, s in sorted(reading.steps.items()):
                yield Sample(family, (step,), float(getattr(s, key)))
        yield Sample("sluice_pipeline_last_pass_timestamp_seconds", (), reading.last_pass)

    @classmethod
    def describe(cls, reading: PipelineReading) -> list[str]:
        if not reading.ran:
            return []
        backlog = ", ".join(f"{step} {s.backlog}" for step, s in sorted(reading.steps.items()) if s.backlog)
        failing = ", ".join(f"{step} {s.failures_total}" for step, s in sorted(reading.steps.items())
                            if s.failures_total)
        return [f"pipeline: last pass at {reading.last_pass:.0f}; backlog: {backlog or 'none'}"
                + (f"; failures: {failing}" if failing else "")]
