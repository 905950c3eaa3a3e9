"""The gap ledger kept in the catalog (`SPOOL/catalog.sqlite`), refreshed incrementally.

Tables (created here, beside the catalog's own; `CREATE ... IF NOT EXISTS`, so a catalog of
either branch of the schema takes them):
- `gap_sources (source, size, mtime_ns, offset, state)`: each input file (a stats file under
  SPOOL/stats/, the journal) with how far it was read and, for stats files, the last line per
  interface (JSON), so a refresh reads only the bytes appended since and carries the counters on.
- `gap_intervals (source, interface, start, end, cause, lost)`: the raw loss intervals each
  source gave (ledger.from_stats / from_journal).
- `gaps (interface, start, end, cause, lost)`: the runs of lossy seconds (integer seconds,
  `end` exclusive), per interface and cause, `lost` NULL where nobody could count: what
  `sluice gaps` prints and the report draws.

A refresh reads what is new, adds its intervals, and recomputes `gaps` only over the seconds
those intervals touch (widened until no run crosses the edge), so its cost follows what changed,
not the length of the campaign. The journal is small (events only): when it changes it is read
again whole and its intervals replaced, since its open intervals (a writer still down) close
only later. A file that shrank or was replaced is read again from its start.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.gaps import ledger

SCHEMA = """
CREATE TABLE IF NOT EXISTS gap_sources (
    source TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
    offset INTEGER NOT NULL, state TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS gap_intervals (
    source TEXT NOT NULL, interface TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    cause TEXT NOT NULL, lost INTEGER);
CREATE INDEX IF NOT EXISTS gap_intervals_time ON gap_intervals (start, end);
CREATE INDEX IF NOT EXISTS gap_intervals_source ON gap_intervals (source);
CREATE TABLE IF NOT EXISTS gaps (
    interface TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, cause TEXT NOT NULL, lost INTEGER,
    PRIMARY KEY (interface, cause, start));
CREATE INDEX IF NOT EXISTS gaps_time ON gaps (start, end);
"""


def connect(spool: Path) -> sqlite3.Connection:
    from appliance.catalog import connect as catalog_connect

    db = catalog_connect(spool)
    db.executescript(SCHEMA)
    return db


def _read_new(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete lines after offset (a torn last line waits for the next refresh)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError as exc:
        raise SluiceError(f"stats {path}: {exc.strerror}") from None
    end = data.rfind(b"\n") + 1
    records = []
    for number, raw in enumerate(data[:end].splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SluiceError(f"stats {path}: line {number} after byte {offset}: not JSON") from None
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end


def _interfaces(db: sqlite3.Connection) -> list[str]:
    """Every interface the ledger has seen: in an interval, or in a stats file (a whole one too)."""
    names = {r[0] for r in db.execute("SELECT DISTINCT interface FROM gap_intervals WHERE interface != ?",
                                      (ledger.ALL,))}
    for (state,) in db.execute("SELECT state FROM gap_sources"):
        names |= {k for k, v in json.loads(state).items() if isinstance(v, dict)}
    return sorted(names)


def _recompute(db: sqlite3.Connection, lo: float, hi: float) -> None:
    """Make `gaps` right over [lo, hi), widened until no interval or run crosses its edges."""
    lo, hi = math.floor(lo), math.ceil(hi)
    while True:
        row = db.execute("SELECT min(start), max(end) FROM gap_intervals WHERE end >= ? AND start < ?",
                         (lo, hi)).fetchone()
        run = db.execute("SELECT min(start), max(end) FROM gaps WHERE end >= ? AND start <= ?", (lo, hi)).fetchone()
        new_lo = min([lo] + [math.floor(v) for v in (row[0], run[0]) if v is not None])
        new_hi = max([hi] + [math.ceil(v) + (1 if v == math.floor(v) else 0) for v in (row[1], run[1])
                             if v is not None])
        if (new_lo, new_hi) == (lo, hi):
            break
        lo, hi = new_lo, new_hi
    intervals = [ledger.Gap(r[0], r[1], r[2], r[3], r[4]) for r in db.execute(
        "SELECT interface, start, end, cause, lost FROM gap_intervals WHERE end >= ? AND start < ?", (lo, hi))]
    found = ledger.runs(intervals, lo, hi, _interfaces(db) or None)
    db.execute("DELETE FROM gaps WHERE end >= ? AND start <= ?", (lo, hi))
    db.executemany("INSERT INTO gaps VALUES (?, ?, ?, ?, ?)",
                   [(g.interface, int(g.start), int(g.end), g.cause, g.lost) for g in found])


def _carried(db: sqlite3.Connection, source: str, before: float) -> dict[str, dict[str, Any]]:
    """Each interface's latest line before `before` in the other stats sources."""
    carried: dict[str, dict[str, Any]] = {}
    for (state,) in db.execute("SELECT state FROM gap_sources WHERE source != ?", (source,)):
        for iface, row in json.loads(state).items():
            if isinstance(row, dict) and isinstance(row.get("ts"), int | float) and row["ts"] < before \
                    and row["ts"] > carried.get(iface, {}).get("ts", -math.inf):
                carried[iface] = row
    return carried


def refresh(spool: Path, journal: Path | None, stats_dir: Path | None = None, now: float | None = None,
            stall_after: float = 3.0) -> int:
    """Bring the catalog's ledger up to date with SPOOL/stats/*.jsonl and the journal.
    Returns the number of sources read (0: nothing had changed)."""
    stats_dir = stats_dir or spool / "stats"
    now = time.time() if now is None else now
    db = connect(spool)
    try:
        with db:
            known = {r["source"]: r for r in db.execute("SELECT * FROM gap_sources")}
            before_ifaces = _interfaces(db)
            touched: list[tuple[float, float]] = []
            read = 0
            paths = sorted(stats_dir.glob("*.jsonl")) if stats_dir.is_dir() else []
            for path in paths + ([journal] if journal is not None and journal.exists() else []):
                st = path.stat()
                name = str(path)
                old = known.get(name)
                is_journal = path == journal
                # the journal's open intervals close at `now`: read it again when it changed, or
                # when one of its intervals is still open (it ends where the last refresh was)
                open_journal = is_journal and old is not None and json.loads(old["state"]).get("open")
                if old is not None and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns \
                        and old["ino"] == st.st_ino and not open_journal:
                    continue
                read += 1
                restart = old is None or old["ino"] != st.st_ino or st.st_size < old["offset"] or is_journal
                if restart and old is not None:
                    span = db.execute("SELECT min(start), max(end) FROM gap_intervals WHERE source = ?",
                                      (name,)).fetchone()
                    if span[0] is not None:
                        touched.append((span[0], span[1]))
                    db.execute("DELETE FROM gap_intervals WHERE source = ?", (name,))
                if is_journal:
                    records = ledger.read_jsonl(path, "journal")
                    gaps = ledger.from_journal(records, until=now)
                    state = {"open": any(g.end == now for g in gaps)}
                    offset = st.st_size
                else:
                    offset = 0 if restart else old["offset"]
                    prev: dict[str, dict[str, Any]] = {} if restart else json.loads(old["state"])
                    records, offset = _read_new(path, offset)
                    if restart and records:  # a new day's file goes on from the day before's counters
                        prev = _carried(db, name, min(float(r.get("ts") or 0) for r in records))
                    gaps = ledger.from_stats(records, stall_after, prev)
                    state = prev
                db.executemany("INSERT INTO gap_intervals VALUES (?, ?, ?, ?, ?, ?)",
                               [(name, g.interface, g.start, g.end, g.cause, g.lost) for g in gaps])
                if gaps:
                    touched.append((min(g.start for g in gaps), max(g.end for g in gaps)))
                db.execute("INSERT OR REPLACE INTO gap_sources VALUES (?, ?, ?, ?, ?, ?)",
                           (name, st.st_size, st.st_mtime_ns, st.st_ino, offset, json.dumps(state)))
            if _interfaces(db) != before_ifaces:  # intervals for every interface go to a new one too
                db.execute("DELETE FROM gaps")
                span = db.execute("SELECT min(start), max(end) FROM gap_intervals").fetchone()
                touched = [span] if span[0] is not None else []
            for lo, hi in touched:
                _recompute(db, lo, hi)
        return read
    finally:
        db.close()


def query(spool: Path, start: float, end: float, interfaces: list[str] | None = None) -> list[ledger.Gap]:
    """The runs of lossy seconds overlapping [start, end), clipped to it."""
    db = connect(spool)
    try:
        lo, hi = math.floor(start), math.ceil(end)
        rows = db.execute("SELECT interface, start, end, cause, lost FROM gaps WHERE end > ? AND start < ? "
                          "ORDER BY start, interface, cause", (lo, hi)).fetchall()
    finally:
        db.close()
    out = []
    for r in rows:
        if interfaces and r["interface"] not in interfaces:
            continue
        # a run the range cuts: its packets are counted per interval, not per second, so the
        # share inside the range is unknown
        lost = r["lost"] if lo <= r["start"] and r["end"] <= hi else None
        out.append(ledger.Gap(r["interface"], float(max(r["start"], lo)), float(min(r["end"], hi)), r["cause"], lost))
    return out
