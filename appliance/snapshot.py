"""The supervisor's snapshot of the box: typed from the loop to /metrics and `sluice status`.

The supervisor builds a Snapshot each state_interval; metrics.py renders it at each scrape and
status.json holds it as JSON (to_json), which `sluice status` reads back into the same types
(snapshot_from_json), so a field is named once, here or in the watchdog that reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from appliance.watchdogs import REGISTRY, WatchdogRun, from_json, load_all, to_json
from appliance.watchdogs.disk import CaptureFile
from appliance.writer import WriterState

STATE_VERSION = 2


@dataclass
class WriterSnapshot(WriterState):
    """One writer as the supervisor reports it: its state plus what the supervisor knows."""

    newest_file_age_seconds: float | None = None  # None: no file closed yet
    restart_reason: str | None = None  # why it was last restarted (None: never restarted)


@dataclass
class RetentionSnapshot:
    deleted_files_total: int = 0
    deleted_bytes_total: int = 0
    blocked: bool = False  # other files fill the spool: no capture is deleted for them
    other_bytes: int = 0  # bytes of other files, as last measured
    min_free: str = ""
    # Bytes of files not backed up yet that retention may not delete while the spool is under its
    # floor (issue 15: never delete before the backup is verified); 0 otherwise.
    waiting_for_backup_bytes: int = 0


@dataclass
class Snapshot:
    version: str
    ts: float = 0.0
    pid: int = 0
    started: float = 0.0
    state_interval: float = 1.0
    config: str | None = None
    host: str = ""
    spool: str = ""
    metrics_port: int | None = None
    metrics_listen: str = ""
    writers: list[WriterSnapshot] = field(default_factory=list)
    retention: RetentionSnapshot = field(default_factory=RetentionSnapshot)
    # Each watchdog's last run; its reading is of the watchdog's reading_type (None: failed).
    watchdogs: dict[str, WatchdogRun] = field(default_factory=dict)
    state_version: int = STATE_VERSION


def newest_file_age(state: WriterState, files: list[CaptureFile], host: str, now: float) -> float | None:
    """Age of the newest closed file of this interface: the last close the writer reported, or
    (after a supervisor restart) the newest such file in the spool; None when there is none."""
    newest = state.last_file_closed_at
    marker = f"{host}_{state.interface}_"
    for f in reversed(files):
        if f.path.name.startswith(marker):
            newest = max(newest or 0.0, f.mtime)
            break
    return round(max(now - newest, 0.0), 3) if newest else None


def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    doc = to_json(snapshot)
    assert isinstance(doc, dict)
    return doc


def snapshot_from_json(doc: Any) -> Snapshot:
    """status.json back into a Snapshot; TypeError or ValueError when it is not one."""
    if not isinstance(doc, dict):
        raise TypeError("not an object")
    load_all()
    snapshot: Snapshot = from_json(Snapshot, doc)
    for name, run in snapshot.watchdogs.items():
        kind = REGISTRY.get(name)
        if run.reading is not None and kind is not None:
            run.reading = from_json(kind.reading_type, run.reading)
    if not math.isfinite(snapshot.ts):
        raise ValueError("ts is not a time")
    return snapshot
