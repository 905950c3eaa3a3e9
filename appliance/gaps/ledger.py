"""The gap ledger: for every second of a capture, per interface, whole or lossy with the cause.

Sources, each giving intervals of loss:
- the writer's stats lines (native/README.md, schema 1; cumulative counters per process):
  a rise of `kernel_drops` (the ring was full) or `writer_drops` (the staging buffers were full)
  between two lines is a loss of exactly that many packets within those two lines' times; a
  `disk_error` on a line means the writer was not writing; a counter that goes backwards, or a
  line after a `final` one, is a new writer process, and the time between the last line of the
  old and the first of the new is `writer_down`; so is a silence longer than `stall_after` (no
  stats while the process was frozen or hung).
- the journal: `writer_exit` .. `writer_start`/`writer_restart` and `supervisor_stop` ..
  `supervisor_start`, and `supervisor_unclean_stop` (from the dead supervisor's last event to the
  restart) (writer down), `disk_error` .. `disk_error_cleared`, `time_step` (the
  second of the step: clock stepped, timestamps around it are not to be trusted), and
  `maintenance` events with `start`/`end` (a maintenance window).
A second is lossy for a cause when one of its intervals overlaps the second; the ledger prints
runs of lossy seconds with the packets lost in them where the source counts them (drops), and
null where nobody could count (a writer that was down saw nothing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError

ALL = "*"  # an interval that concerns every interface (clock steps, supervisor down)
CAUSES = ("kernel_drops", "writer_drops", "writer_down", "disk_error", "clock_stepped", "maintenance")


@dataclass
class Gap:
    interface: str
    start: float  # unix seconds
    end: float
    cause: str
    lost: int | None = None


def from_stats(lines: Iterable[dict[str, Any]], stall_after: float = 3.0,
               last: dict[str, dict[str, Any]] | None = None) -> list[Gap]:
    """Loss intervals from stats lines (any order, several interfaces and processes mixed).

    `last` carries each interface's last line from one call to the next (read incrementally):
    it is read as the line before the first of these and updated to the last one seen."""
    last = {} if last is None else last
    by_iface: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line.get("type") in ("stats", "final") and isinstance(line.get("ts"), int | float):
            by_iface.setdefault(str(line.get("interface", "")), []).append(line)
    gaps: list[Gap] = []
    for iface, rows in by_iface.items():
        rows.sort(key=lambda r: r["ts"])
        prev: dict[str, Any] | None = last.get(iface)
        for row in rows:
            base = prev
            if prev is not None:
                new_process = prev["type"] == "final" or any(
                    row.get(k, 0) < prev.get(k, 0) for k in ("packets", "kernel_drops", "writer_drops"))
                if new_process:
                    gaps.append(Gap(iface, prev["ts"], row["ts"], "writer_down"))
                    base = None  # the new process counts from zero
                elif row["ts"] - prev["ts"] > stall_after:
                    gaps.append(Gap(iface, prev["ts"], row["ts"], "writer_down"))
            start = prev["ts"] if prev is not None else row["ts"]
            for key in ("kernel_drops", "writer_drops"):
                lost = int(row.get(key) or 0) - (int(base.get(key) or 0) if base else 0)
                if lost > 0:
                    gaps.append(Gap(iface, start, row["ts"], key, lost))
            if row.get("disk_error"):
                gaps.append(Gap(iface, start, row["ts"], "disk_error"))
            prev = row
        if prev is not None:
            last[iface] = prev
    return gaps


def from_journal(records: Iterable[dict[str, Any]], until: float) -> list[Gap]:
    """Loss intervals from journal events; an interval still open at the end closes at `until`."""
    gaps: list[Gap] = []
    down: dict[str, float] = {}
    disk: dict[str, float] = {}
    supervisor_down: float | None = None
    for r in sorted(records, key=lambda r: float(r.get("ts", 0))):
        ts, event, iface = float(r.get("ts", 0)), r.get("event"), str(r.get("interface", ALL))
        if event == "writer_exit":
            down.setdefault(iface, ts)
        elif event in ("writer_start", "writer_restart") and iface in down:
            gaps.append(Gap(iface, down.pop(iface), ts, "writer_down"))
        elif event == "supervisor_stop":
            supervisor_down = ts
        elif event == "supervisor_unclean_stop" and isinstance(r.get("last_event_ts"), int | float):
            # the previous supervisor died: nothing captured from its last event to this restart
            gaps.append(Gap(ALL, float(r["last_event_ts"]), ts, "writer_down"))
        elif event == "supervisor_start" and supervisor_down is not None:
            gaps.append(Gap(ALL, supervisor_down, ts, "writer_down"))
            supervisor_down = None
        elif event == "disk_error":
            disk.setdefault(iface, ts)
        elif event == "disk_error_cleared" and iface in disk:
            gaps.append(Gap(iface, disk.pop(iface), ts, "disk_error"))
        elif event == "time_step":
            gaps.append(Gap(ALL, ts, ts, "clock_stepped"))
        elif event == "maintenance" and "start" in r and "end" in r:
            gaps.append(Gap(iface, float(r["start"]), float(r["end"]), "maintenance"))
    for iface, ts in down.items():
        gaps.append(Gap(iface, ts, until, "writer_down"))
    for iface, ts in disk.items():
        gaps.append(Gap(iface, ts, until, "disk_error"))
    if supervisor_down is not None:
        gaps.append(Gap(ALL, supervisor_down, until, "writer_down"))
    return gaps


def _seconds(g: Gap) -> range:
    """The whole seconds an interval touches (a point in time touches its own second)."""
    first = math.floor(g.start)
    last = math.ceil(g.end) - 1 if g.end > g.start else first
    return range(first, max(first, last) + 1)


def runs(gaps: list[Gap], start: float, end: float, interfaces: list[str] | None = None) -> list[Gap]:
    """Runs of lossy seconds within [start, end), per interface and cause, lost packets summed.

    The packets of an interval are counted in its last second (where the writer reported them);
    a run's `lost` is null when no interval in it was counted. An interval for every interface
    (`*`) is given to each interface named, or kept as `*`.
    """
    lo, hi = math.floor(start), math.ceil(end)
    per: dict[tuple[str, str], dict[int, tuple[bool, int]]] = {}
    for g in gaps:
        secs = _seconds(g)
        last = secs[-1]
        for iface in (interfaces if g.interface == ALL and interfaces else [g.interface]):
            table = per.setdefault((iface, g.cause), {})
            for s in secs:
                if lo <= s < hi:
                    counted, lost = table.get(s, (False, 0))
                    add = g.lost if g.lost is not None and s == last else 0
                    table[s] = (counted or g.lost is not None, lost + add)
    out: list[Gap] = []
    for (iface, cause), table in per.items():
        current: Gap | None = None
        for s in sorted(table):
            counted, lost = table[s]
            if current is None or s != current.end:
                current = Gap(iface, s, s + 1, cause, None)
                out.append(current)
            current.end = s + 1
            if counted:
                current.lost = (current.lost or 0) + lost
    out.sort(key=lambda g: (g.start, g.interface, g.cause))
    return out


def read_jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SluiceError(f"{what} {path}: {getattr(exc, 'strerror', None) or 'not text'}") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(text.splitlines()):
                continue  # a torn last line (the writer was killed mid-line)
            raise SluiceError(f"{what} {path}: line {number}: not JSON") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def ledger(start: float, end: float, journal: Path | None = None, stats: list[Path] | None = None,
           interfaces: list[str] | None = None, stall_after: float = 3.0) -> list[Gap]:
    gaps: list[Gap] = []
    seen_ifaces: set[str] = set()
    lines = []  # all files at once: a day's file continues the counters of the day before
    for path in stats or []:
        lines += read_jsonl(path, "stats")
    seen_ifaces |= {str(r.get("interface")) for r in lines if r.get("interface")}
    gaps += from_stats(lines, stall_after)
    if journal is not None:
        records = read_jsonl(journal, "journal")
        seen_ifaces |= {str(r["interface"]) for r in records if r.get("interface")}
        gaps += from_journal(records, until=end)
    names = interfaces or sorted(seen_ifaces) or None
    found = runs(gaps, start, end, names)
    if interfaces:
        found = [g for g in found if g.interface in interfaces]
    return found


def to_json(g: Gap) -> dict[str, Any]:
    return asdict(g)
