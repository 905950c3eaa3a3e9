"""The capture journal: an append-only JSON-lines event log kept in the spool with the data.

One object per line: `ts` (unix seconds), `event` (a short name such as "writer_start",
"writer_restart", "file_closed", "retention_delete", "time_step", "config_reload") and the
event's own fields. Lines are written with O_APPEND in one write() each, so a reader never sees
a torn line and several processes could share the file.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

# `sluice extract` writes one event here and pays for every import at each query (issue 14):
# logging is imported only to report a failed append, typing only for the type checker.
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def _record(event: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    record: dict[str, Any] = {"ts": round(time.time(), 6), "event": event, **fields}
    return record, (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


def append_once(path: str | os.PathLike[str], event: str, **fields: Any) -> dict[str, Any]:
    """One event from a short-lived command (`sluice extract`): one open, one write, and an
    OSError for the caller to report, where Journal.append logs and goes on."""
    record, line = _record(event, fields)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if os.write(fd, line) != len(line):
            raise OSError(errno.ENOSPC, "short write (disk full?)")
    finally:
        os.close(fd)
    return record


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._failed: set[int | None] = set()

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event. A full or failing disk loses the line, never the capture: the error is
        logged once per kind and the caller goes on (retention is what frees the space)."""
        record, line = _record(event, fields)
        try:
            os.write(self._fd, line)
        except OSError as exc:
            if exc.errno not in self._failed:
                self._failed.add(exc.errno)
                import logging

                logging.getLogger("sluice.journal").error(
                    "journal %s: cannot append (%s): events are lost until it works again", self.path, exc.strerror)
        else:
            self._failed.clear()
        return record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Events that commands other than the supervisor append to the same journal (`sluice selftest`,
# `sluice extract`, `sluice notes`): they say nothing about how the last supervisor ended.
OTHER_COMMANDS_EVENTS = frozenset({"selftest", "extract", "note"})


def last_record(path: str | os.PathLike[str], tail_bytes: int = 65536,
                skip: frozenset[str] = OTHER_COMMANDS_EVENTS) -> dict[str, Any] | None:
    """The newest whole record of a journal (reads only its tail) whose event is not in `skip`,
    None when there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and record.get("event") not in skip:
            return record
    return None


def read_events(path: str | os.PathLike[str], event: str | None = None) -> Iterator[dict[str, Any]]:
    """Every record of a journal (optionally only one event type); skips a torn last line."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event is None or record.get("event") == event:
                    yield record
    except FileNotFoundError:
        return
