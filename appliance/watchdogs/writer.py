"""Writer watchdog: the per-interface readings of a writer that are not plain counters:
whether it is up, its drop ratio and how old its newest closed file is."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from appliance.watchdogs.disk import CaptureFile
from appliance.writer import WriterState


@dataclass
class WriterReading:
    interface: str
    up: bool
    drop_ratio: float
    newest_file_age_seconds: float  # +inf when no file was ever closed


def newest_file_age(state: WriterState, files: list[CaptureFile], host: str, now: float) -> float:
    """Age of the newest closed file of this interface: the last close the writer reported, or
    (after a supervisor restart) the newest such file in the spool."""
    newest = state.last_file_closed_at
    marker = f"{host}_{state.interface}_"
    for f in reversed(files):
        if f.path.name.startswith(marker):
            newest = max(newest or 0.0, f.mtime)
            break
    return max(now - newest, 0.0) if newest else math.inf


def read(state: WriterState, files: list[CaptureFile], host: str, now: float | None = None) -> WriterReading:
    now = time.time() if now is None else now
    return WriterReading(state.interface, state.up, state.drop_ratio, newest_file_age(state, files, host, now))
