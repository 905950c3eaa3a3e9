"""The spool's catalog: one SQLite database (`SPOOL/catalog.sqlite`, WAL on a filesystem whose
blocks are at least a memory page, else a rollback journal: see `journal_mode`) with a row per closed
capture file and each file's index of addresses and (protocol, port) pairs.

Rows come from `sluice-pcap index` (C, one pass over the file right after it is closed), never
from Python reading packets; the index JSON is also kept beside the data as a sidecar
(`SPOOL/.index/<path under the spool>.json`), so `rebuild` re-reads a file only when its sidecar is
missing or stale. A row is the same whether the supervisor added it live or `rebuild` made it.

Writers: the supervisor (`on_writer_record`, on a background thread so the writer's stats channel
never waits), retention (`forget`), `rebuild`. Readers: `sluice catalog ls`, `sluice extract`.
"""

from __future__ import annotations

import _thread
import atexit
import ipaddress
import json
import os
import re
import shutil  # argparse imports it anyway
import sqlite3
import time
from pathlib import Path

from appliance.errors import SluiceError
from appliance.journal import read_events

# `sluice extract` imports this module for every query and pays for each import (issue 14), so
# what only the writers of the catalog use (logging, subprocess, mmap, typing) is
# imported where it is used.
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any


def _warning(msg: str, *args: object) -> None:
    import logging

    logging.getLogger("sluice.catalog").warning(msg, *args)

CATALOG_NAME = "catalog.sqlite"
INDEX_DIR = ".index"
SCHEMA_VERSION = 2
INDEX_VERSION = 2  # of the sidecars: an older one is made again
# <host>_<iface>_<UTC start>_<seq>.<ext>, as native/src/capture/naming.c writes them.
FILE_NAME = re.compile(r"^(?P<host>[^_]+)_(?P<iface>.+)_(?P<start>\d{8}T\d{6}\.\d{9}Z)_(?P<seq>\d+)"
                       r"\.pcap(ng)?(\.zst)?$")
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the spool
    host TEXT NOT NULL,
    interface TEXT NOT NULL,
    first_ns INTEGER,                   -- NULL: no packets
    last_ns INTEGER,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,             -- original (wire) length of the packets
    size INTEGER NOT NULL,              -- file size
    kernel_drops INTEGER,               -- the writer's counters at close (closing ISB); NULL: not recorded
    writer_drops INTEGER,
    format TEXT NOT NULL,
    compressed INTEGER NOT NULL,
    damage TEXT,                        -- NULL: read whole
    indexed INTEGER NOT NULL,           -- 1: addrs and ports rows are complete for this file
    positions INTEGER NOT NULL,         -- 1: SPOOL/.index/<path>.pos lists where each address's records are
    protocols TEXT NOT NULL,            -- JSON {ip protocol: packets}
    state TEXT NOT NULL,                -- closed | damaged | later pipeline steps
    steps TEXT NOT NULL DEFAULT '{}'    -- JSON, filled by the pipeline
);
CREATE INDEX IF NOT EXISTS files_time ON files (first_ns, last_ns);
CREATE TABLE IF NOT EXISTS addrs (
    addr BLOB NOT NULL,                 -- 16 bytes, IPv4 as ::ffff:a.b.c.d
    file_id INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    PRIMARY KEY (addr, file_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS addrs_file ON addrs (file_id);
CREATE TABLE IF NOT EXISTS ports (
    proto INTEGER NOT NULL,
    port INTEGER NOT NULL,
    file_id INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    PRIMARY KEY (proto, port, file_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ports_file ON ports (file_id);
"""

ROW_COLUMNS = ("path", "host", "interface", "first_ns", "last_ns", "packets", "bytes", "size", "kernel_drops",
               "writer_drops", "format", "compressed", "damage", "indexed", "positions", "state", "steps")


def find_pcap_binary() -> str:
    """sluice-pcap: $SLUICE_PCAP, the repo's build, PATH."""
    for c in (os.environ.get("SLUICE_PCAP", ""),
              str(Path(__file__).resolve().parent.parent / "native" / "build" / "sluice-pcap"),
              shutil.which("sluice-pcap") or ""):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise SluiceError("sluice-pcap not found: build it with `make native` or set SLUICE_PCAP", 2)


def catalog_path(spool: str | os.PathLike[str]) -> Path:
    return Path(spool) / CATALOG_NAME


def sidecar_path(spool: str | os.PathLike[str], rel: str) -> Path:
    return Path(spool) / INDEX_DIR / (rel + ".json")


def positions_path(spool: str | os.PathLike[str], rel: str) -> Path:
    """Where `sluice-pcap index --positions` puts the offsets of each address's records."""
    return Path(spool) / INDEX_DIR / (rel + ".pos")


def addr_key(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The 16-byte form stored in addrs (IPv4 mapped into IPv6), ordered like the addresses."""
    if isinstance(addr, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed).packed
    return addr.packed


def journal_mode(spool: str | os.PathLike[str]) -> str:
    """WAL where SQLite's memory-mapped WAL index is safe, else DELETE (a rollback journal).
    SQLite extends the index by writing one byte per page; on a filesystem with blocks smaller
    than a page (ext4 picks 1 KiB for small volumes) the rest of the page has no disk space yet,
    and on a full spool touching it is a SIGBUS that kills the supervisor (seen in the flood test
    of issue 11). The rollback journal only writes: a full disk is an error there."""
    return "WAL" if os.statvfs(spool).f_bsize >= os.sysconf("SC_PAGESIZE") else "DELETE"


def connect(spool: str | os.PathLike[str], readonly: bool = False) -> sqlite3.Connection:
    """The spool's catalog; read-only never creates it (SluiceError if missing)."""
    path = catalog_path(spool)
    if readonly:
        if not path.exists():
            raise SluiceError(f"{path}: no catalog; `sluice catalog rebuild --spool {spool}` builds it", 2)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError:
            version = None
        if version is None or version[0] != str(SCHEMA_VERSION):
            db.close()
            raise SluiceError(f"{path}: not a catalog of this version; `sluice catalog rebuild --spool {spool}` "
                              "makes it again", 2)
    else:
        db = sqlite3.connect(path, timeout=10)
        db.execute(f"PRAGMA journal_mode={journal_mode(path.parent)}")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.commit()
    db.row_factory = sqlite3.Row
    return db


# -- one file -> one row ---------------------------------------------------------------------------

def run_index(path: str | os.PathLike[str], binary: str | None = None,
              positions: Path | None = None) -> dict[str, Any]:
    """`sluice-pcap index` of one file: its JSON (a damaged file still gives one, with `damage`);
    with positions, also the offsets of each address's records there (uncompressed files)."""
    import subprocess

    extra = ["--positions", str(positions)] if positions is not None else []
    proc = subprocess.run([binary or find_pcap_binary(), "index", *extra, str(path)], capture_output=True, text=True)
    if proc.returncode in (0, 1) and proc.stdout.strip():
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc
    raise SluiceError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                      f"sluice-pcap index {path}: exit {proc.returncode}", 2)


def load_index(spool: Path, rel: str, binary: str | None = None, write_sidecar: bool = True) -> dict[str, Any]:
    """The index of spool/rel: its sidecar when it still describes the file, else a new one."""
    path = spool / rel
    st = path.stat()
    side, pos = sidecar_path(spool, rel), positions_path(spool, rel)
    try:
        doc: dict[str, Any] = json.loads(side.read_text())
        if doc.get("size") == st.st_size and doc.get("mtime_ns") == st.st_mtime_ns and \
                doc.get("index_version") == INDEX_VERSION and \
                (not doc.get("positions") or pos.exists()):
            return doc
    except (OSError, ValueError):
        pass
    try:
        pos.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        write_sidecar = False
    doc = run_index(path, binary, pos if write_sidecar else None)
    doc["size"], doc["mtime_ns"], doc["index_version"] = st.st_size, st.st_mtime_ns, INDEX_VERSION
    doc["path"] = rel
    if write_sidecar:
        try:
            side.parent.mkdir(parents=True, exist_ok=True)
            tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(tmp, side)
        except OSError as exc:
            _warning("catalog: cannot write the index sidecar %s: %s", side, exc.strerror)
    return doc


def row_from_index(rel: str, doc: dict[str, Any], interface_hint: str | None = None) -> dict[str, Any]:
    """The files row of an index document (the same for the live hook and for rebuild)."""
    name = Path(rel).name
    m = FILE_NAME.match(name)
    ifnames = [i.get("name") for i in doc.get("interfaces", []) if i.get("name")]
    host = m.group("host") if m else Path(rel).parts[0] if len(Path(rel).parts) > 1 else ""
    interface = m.group("iface") if m else interface_hint or (ifnames[0] if ifnames else "")
    drops = doc.get("drops")
    return {
        "path": rel, "host": host, "interface": interface,
        "first_ns": doc.get("first_ns"), "last_ns": doc.get("last_ns"),
        "packets": int(doc.get("packets", 0)), "bytes": int(doc.get("bytes", 0)), "size": int(doc["size"]),
        "kernel_drops": drops.get("ifdrop") if drops else None,
        "writer_drops": drops.get("osdrop") if drops else None,
        "format": doc.get("format", ""), "compressed": int(bool(doc.get("compressed"))),
        "damage": doc.get("damage"), "indexed": 0 if doc.get("damage") else 1,
        "positions": int(bool(doc.get("positions"))),
        "protocols": json.dumps(doc.get("protocols", {}), sort_keys=True),
        "state": "damaged" if doc.get("damage") else "closed", "steps": "{}",
    }


def _insert(db: sqlite3.Connection, row: dict[str, Any], doc: dict[str, Any]) -> None:
    cols = list(row)
    db.execute("DELETE FROM addrs WHERE file_id IN (SELECT id FROM files WHERE path = ?)", (row["path"],))
    db.execute("DELETE FROM ports WHERE file_id IN (SELECT id FROM files WHERE path = ?)", (row["path"],))
    db.execute("DELETE FROM files WHERE path = ?", (row["path"],))
    cur = db.execute(f"INSERT INTO files ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                     [row[c] for c in cols])
    fid = cur.lastrowid
    if not row["indexed"]:
        return
    db.executemany("INSERT INTO addrs (addr, file_id, packets) VALUES (?, ?, ?)",
                   ((addr_key(ipaddress.ip_address(a)), fid, n) for a, n in doc.get("addresses", {}).items()))
    ports = []
    for key, n in doc.get("ports", {}).items():
        proto, _, port = key.partition("/")
        ports.append((PROTO_NUMBERS[proto], int(port), fid, n))
    db.executemany("INSERT INTO ports (proto, port, file_id, packets) VALUES (?, ?, ?, ?)", ports)


def relative(spool: Path, path: str | os.PathLike[str]) -> str:
    p = Path(path)
    if not p.is_absolute():
        p = Path.cwd() / p
    try:
        return str(p.resolve().relative_to(spool.resolve()))
    except ValueError:
        raise SluiceError(f"{path}: not inside the spool {spool}", 2) from None


def add_file(spool: str | os.PathLike[str], path: str | os.PathLike[str], interface: str | None = None,
             db: sqlite3.Connection | None = None, binary: str | None = None) -> dict[str, Any]:
    """Index one closed file and put (or replace) its row; returns the row."""
    sp = Path(spool)
    rel = relative(sp, path)
    doc = load_index(sp, rel, binary)
    row = row_from_index(rel, doc, interface)
    own = db is None
    db = connect(sp) if db is None else db
    try:
        with db:
            _insert(db, row, doc)
    finally:
        if own:
            db.close()
    return row


def backed_up(spool: str | os.PathLike[str]) -> set[str]:
    """Paths (relative to the spool) whose pipeline backup step verified every target. A missing
    or unreadable catalog gives the empty set: then nothing counts as backed up."""
    try:
        db = connect(spool, readonly=True)
    except (SluiceError, sqlite3.Error):
        return set()
    try:
        return {row[0] for row in db.execute(
            "SELECT path FROM files WHERE json_extract(steps, '$.backup.ok') = 1")}
    except sqlite3.Error:
        return set()
    finally:
        db.close()


def forget(spool: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """A file left the spool (retention): its row, index rows and sidecar go. Never raises."""
    try:
        sp = Path(spool)
        rel = relative(sp, path)
        for side in (sidecar_path(sp, rel), positions_path(sp, rel)):
            side.unlink(missing_ok=True)
        if not catalog_path(sp).exists():
            return
        db = connect(sp)
        try:
            with db:
                db.execute("DELETE FROM addrs WHERE file_id IN (SELECT id FROM files WHERE path = ?)", (rel,))
                db.execute("DELETE FROM ports WHERE file_id IN (SELECT id FROM files WHERE path = ?)", (rel,))
                db.execute("DELETE FROM files WHERE path = ?", (rel,))
        finally:
            db.close()
    except Exception as exc:  # noqa: BLE001 (retention must go on; rebuild repairs the catalog)
        _warning("catalog: cannot forget %s: %s", path, exc)


# -- the supervisor's hook -------------------------------------------------------------------------

class _Recorder:
    """Indexes closed files on one background thread, in the order they closed."""

    def __init__(self) -> None:
        import queue  # with threading: 5 ms that `sluice extract`, which records nothing, does not pay
        import threading

        # ("add", spool, path, interface) or ("forget", spool, path, None), in the order they came
        self.queue: queue.Queue[tuple[str, str, str, str | None] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="catalog", daemon=True)
        self.thread.start()
        atexit.register(self.drain)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                return
            kind, spool, path, interface = item
            if kind == "forget":
                forget(spool, path)
            else:
                try:
                    add_file(spool, path, interface)
                except Exception as exc:  # noqa: BLE001 (a file the catalog misses costs a rebuild, not the capture)
                    _warning("catalog: cannot add %s: %s", path, exc)
            self.queue.task_done()

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until every queued file is in the catalog (at exit, and for tests)."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.05)


_recorder: _Recorder | None = None
_recorder_lock = _thread.allocate_lock()  # threading's Lock, without importing threading


def on_writer_record(spool: str | os.PathLike[str], interface: str, record: dict[str, Any]) -> None:
    """The supervisor's hook for each stats-channel record: a closed (or recovered) file is
    queued for indexing and its catalog row. Returns at once; never raises."""
    global _recorder
    path = record.get("path")
    if record.get("type") not in ("file", "recovered") or not path:
        return
    with _recorder_lock:
        if _recorder is None:
            _recorder = _Recorder()
        _recorder.queue.put(("add", str(spool), str(path), interface or None))


def forget_soon(spool: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """forget, on the catalog's thread when this process has one (the supervisor): retention
    under a flood must not wait for SQLite before it deletes the next file. Never raises."""
    with _recorder_lock:
        recorder = _recorder
    if recorder is None:
        forget(spool, path)
    else:
        recorder.queue.put(("forget", str(spool), str(path), None))


def drain(timeout: float = 60.0) -> None:
    if _recorder is not None:
        _recorder.drain(timeout)


# -- rebuild and listing ---------------------------------------------------------------------------

class RebuildResult:
    def __init__(self, files: int, reindexed: int, seconds: float) -> None:
        self.files, self.reindexed, self.seconds = files, reindexed, seconds


def _journal_interfaces(spool: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for ev in read_events(spool / "journal.jsonl", "file_closed"):
        if ev.get("path") and ev.get("interface"):
            try:
                found[relative(spool, ev["path"])] = str(ev["interface"])
            except SluiceError:
                continue
    return found


def rebuild(spool: str | os.PathLike[str], binary: str | None = None) -> RebuildResult:
    """Every row again from the files (their sidecars when current) and the journal, in one
    transaction: readers see the old catalog or the new one. A damaged database is set aside."""
    sp = Path(spool)
    if not sp.is_dir():
        raise SluiceError(f"spool {spool}: no such directory", 2)
    t0 = time.monotonic()
    path = catalog_path(sp)
    if path.exists():
        try:
            probe = sqlite3.connect(path, timeout=10)
            ok = probe.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            probe.close()
        except sqlite3.DatabaseError:
            ok = False
        if not ok:
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            _warning("catalog %s is damaged: set aside as %s", path, aside.name)
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    if path.exists():
        # A catalog of another schema is made again from scratch (the rows come from the files).
        probe = sqlite3.connect(path, timeout=10)
        try:
            tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = probe.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
                if "meta" in tables else None
            if tables and (version is None or version[0] != str(SCHEMA_VERSION)):
                with probe:
                    for table in ("addrs", "ports", "files", "meta"):
                        probe.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            probe.close()
    hints = _journal_interfaces(sp)
    binary = binary or find_pcap_binary()
    entries = []
    reindexed = 0
    from appliance.watchdogs.disk import capture_files  # rebuild only: extract starts without it

    for f in capture_files(sp):
        rel = str(f.path.relative_to(sp))
        side = sidecar_path(sp, rel)
        before = side.stat().st_mtime_ns if side.exists() else None
        doc = load_index(sp, rel, binary)
        after = side.stat().st_mtime_ns if side.exists() else None
        reindexed += before is None or before != after
        entries.append((row_from_index(rel, doc, hints.get(rel)), doc))
    from appliance.pipeline import journal_steps, state_of  # the pipeline's results, kept in the journal

    done = journal_steps(sp)
    for row, _doc in entries:
        steps = done.get(row["path"])
        if steps:
            row["steps"] = json.dumps(steps, sort_keys=True)
            row["state"] = state_of(steps) if state_of(steps) != "closed" else row["state"]
    entries.sort(key=lambda e: (e[0]["first_ns"] or 0, e[0]["path"]))
    db = connect(sp)
    try:
        with db:
            db.execute("DELETE FROM addrs")
            db.execute("DELETE FROM ports")
            db.execute("DELETE FROM files")
            for row, doc in entries:
                _insert(db, row, doc)
    finally:
        db.close()
    return RebuildResult(len(entries), reindexed, time.monotonic() - t0)


def rows(db: sqlite3.Connection, from_ns: int | None = None, to_ns: int | None = None,
         interfaces: Iterable[str] | None = None) -> Iterator[sqlite3.Row]:
    """Files with a packet in [from_ns, to_ns) (files without packets only when no window is given),
    oldest first."""
    where, args = [], []
    if from_ns is not None:
        where.append("last_ns >= ?")
        args.append(from_ns)
    if to_ns is not None:
        where.append("first_ns < ?")
        args.append(to_ns)
    ifs = list(interfaces or [])
    if ifs:
        where.append(f"interface IN ({', '.join('?' * len(ifs))})")
        args.extend(ifs)
    sql = "SELECT * FROM files" + (" WHERE " + " AND ".join(where) if where else "") + \
        " ORDER BY first_ns, path"
    yield from db.execute(sql, args)


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = {c: row[c] for c in ROW_COLUMNS}
    d["compressed"] = bool(d["compressed"])
    d["indexed"] = bool(d["indexed"])
    d["positions"] = bool(d["positions"])
    d["steps"] = json.loads(d["steps"])
    d["protocols"] = json.loads(row["protocols"])
    return d
