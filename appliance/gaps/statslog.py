"""The writers' stats lines, kept for the gap ledger: SPOOL/stats/<interface>-<YYYY-MM-DD>.jsonl.

The supervisor hands every `stats` and `final` line of every writer to `append`. Only what the
ledger and the report read is kept (time, type, interface, packets, bytes, kernel_drops,
writer_drops, disk_error):
about 120 bytes a line, 10 MB a day per interface at one line a second. Each line is one
O_APPEND write; a full or failing disk loses the line, never the capture (the error is logged
once per kind, as the journal does).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("sluice.statslog")

KEPT = ("ts", "type", "interface", "packets", "bytes", "kernel_drops", "writer_drops", "disk_error")


class StatsLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # one reader thread per writer calls append
        self._fds: dict[tuple[str, str], int] = {}
        self._failed: set[int | None] = set()

    def path(self, interface: str, ts: float) -> Path:
        day = dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d")
        return self.directory / f"{interface}-{day}.jsonl"

    def append(self, interface: str, record: dict[str, Any]) -> None:
        ts = record.get("ts")
        if not isinstance(ts, int | float):
            return
        line = json.dumps({k: record.get(k) for k in KEPT} | {"interface": interface},
                          separators=(",", ":")).encode() + b"\n"
        path = self.path(interface, ts)
        with self._lock:
            try:
                fd = self._fds.get((interface, path.name))
                if fd is None:
                    self.directory.mkdir(parents=True, exist_ok=True)
                    for key in [k for k in self._fds if k[0] == interface]:  # yesterday's file
                        os.close(self._fds.pop(key))
                    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                    self._fds[(interface, path.name)] = fd
                os.write(fd, line)
                self._failed.clear()
            except OSError as exc:
                if exc.errno not in self._failed:
                    self._failed.add(exc.errno)
                    log.error("stats log %s: cannot append (%s): the gap ledger misses these seconds' drops",
                              path, exc.strerror)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
