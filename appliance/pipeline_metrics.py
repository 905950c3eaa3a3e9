"""The pipeline's progress file: the pipeline process writes SPOOL/pipeline.json (temporary
name, rename) after every step; the supervisor's `pipeline` watchdog
(appliance/watchdogs/pipeline.py) reads it, so one `/metrics` serves both.

Per step: backlog (files the step still has to do), bytes and seconds of work done (their rates
give bytes/s), last success (unix time), failures; and when the last pass over the catalog ended."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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
