"""Notes in the capture journal: what an operator saw or did, with the time, kept with the data.

A note is one journal line (`"event": "note"`), appended with O_APPEND in a single write() like
every journal event, so it interleaves safely with the supervisor's own lines. Unlike the
supervisor's events, a note that cannot be written is an error the operator sees.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.journal import read_events

MAX_NOTE = 16 * 1024


def author() -> str:
    """Who is writing: the user behind sudo when there is one."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def add(journal: Path, text: str, at: float | None = None, who: str | None = None) -> dict[str, Any]:
    text = text.strip()
    if not text:
        raise SluiceError("sluice notes add: the note is empty")
    if len(text.encode()) > MAX_NOTE:
        raise SluiceError(f"sluice notes add: the note is longer than {MAX_NOTE} bytes")
    record: dict[str, Any] = {"ts": round(time.time(), 6), "event": "note", "text": text,
                              "author": who or author()}
    if at is not None:
        record["at"] = round(at, 6)  # the time the note is about, when not now
    line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    try:
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SluiceError(f"journal {journal}: {exc.strerror}", exit_code=1) from None
    try:
        if os.write(fd, line) != len(line):
            raise SluiceError(f"journal {journal}: short write, the note is not whole", exit_code=1)
    except OSError as exc:
        raise SluiceError(f"journal {journal}: {exc.strerror}: the note was not written", exit_code=1) from None
    finally:
        os.close(fd)
    return record


def notes(journal: Path, start: float | None = None, end: float | None = None) -> Iterator[dict[str, Any]]:
    """The notes of a journal whose time (`at`, else `ts`) lies in [start, end]."""
    if not journal.exists():
        raise SluiceError(f"journal {journal}: no such file")
    for record in read_events(journal, "note"):
        when = record.get("at", record.get("ts", 0))
        if (start is None or when >= start) and (end is None or when <= end):
            yield record
