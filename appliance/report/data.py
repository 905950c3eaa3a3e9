"""What the report shows, read from the spool: the writers' stats lines (traffic), the catalog
(files, the gap ledger, backup steps), the journal (events), flows of the window's files."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.gaps import ledger, store

# journal events drawn on the time axis, with the label they get
EVENTS = {
    "supervisor_start": "supervisor start", "supervisor_stop": "supervisor stop",
    "supervisor_unclean_stop": "supervisor died", "writer_start": "writer start", "writer_exit": "writer exit",
    "writer_restart": "writer restart", "disk_error": "disk error", "disk_error_cleared": "disk ok",
    "time_step": "clock step", "maintenance": "maintenance", "meta_config_changed": "config change",
    "config_reload": "config reload", "note": "note", "retention_delete": "retention",
}


@dataclass
class Series:
    times: list[float] = field(default_factory=list)
    pps: list[float] = field(default_factory=list)
    bps: list[float] = field(default_factory=list)


@dataclass
class Window:
    start: float
    end: float
    traffic: dict[str, Series] = field(default_factory=dict)
    gaps: list[ledger.Gap] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    talkers: list[tuple[str, int]] = field(default_factory=list)  # (address, bytes)
    ports: list[tuple[str, int]] = field(default_factory=list)   # ("tcp/443", bytes)
    flows_source: str = ""
    disk: dict[str, float] = field(default_factory=dict)
    disk_series: list[tuple[float, int]] = field(default_factory=list)  # (file closed, spool bytes then)
    backup: dict[str, int] = field(default_factory=dict)
    packets: int = 0
    bytes: int = 0


def traffic(stats_dir: Path, start: float, end: float) -> dict[str, Series]:
    """Packets and bits per second per interface: the rise of the cumulative counters between two
    lines of the same writer over their time apart (a new writer process starts from zero)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(stats_dir.glob("*.jsonl")) if stats_dir.is_dir() else []:
        for r in ledger.read_jsonl(path, "stats"):
            if r.get("type") in ("stats", "final") and isinstance(r.get("ts"), int | float) and \
                    start - 5 <= r["ts"] <= end + 5:
                rows[str(r.get("interface"))].append(r)
    out: dict[str, Series] = {}
    for iface, lines in rows.items():
        lines.sort(key=lambda r: r["ts"])
        s = out.setdefault(iface, Series())
        for a, b in zip(lines, lines[1:], strict=False):
            dt = b["ts"] - a["ts"]
            dp, db = (b.get("packets") or 0) - (a.get("packets") or 0), (b.get("bytes") or 0) - (a.get("bytes") or 0)
            if dt <= 0 or a["type"] == "final" or dp < 0 or not start <= b["ts"] <= end:
                continue
            s.times.append(b["ts"])
            s.pps.append(dp / dt)
            s.bps.append(max(db, 0) * 8 / dt)
    return out


def flows(spool: Path, files: list[dict[str, Any]], start: float, end: float,
          top: int = 10) -> tuple[list[tuple[str, int]], list[tuple[str, int]], str]:
    """Top talkers (bytes both ways) and ports (bytes) of the window's flows: the pipeline's
    Parquet when it has some for the window, else `sluice-pcap flows` over the window's files."""
    parquet = sorted((spool / "flows").rglob("*.parquet")) if (spool / "flows").is_dir() else []
    records: list[dict[str, Any]] = []
    if parquet:
        import pyarrow.parquet as pq

        for path in parquet:
            for r in pq.read_table(path).to_pylist():
                records.append(r)
        source = f"{len(parquet)} Parquet file(s) of the pipeline"
    else:
        from appliance.catalog import find_pcap_binary

        paths = [str(spool / f["path"]) for f in files if (spool / f["path"]).exists()]
        if not paths:
            return [], [], "no capture files in the window"
        tmp = Path(tempfile.mkdtemp(prefix="sluice-report-"))
        try:
            out = tmp / "flows.csv"
            proc = subprocess.run([find_pcap_binary(), "flows", "--format", "csv", "-o", str(out), *paths],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SluiceError(f"sluice-pcap flows: {proc.stderr.strip().splitlines()[-1:]}")
            with open(out, newline="") as f:
                records = list(csv.DictReader(f))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        source = f"sluice-pcap flows over {len(paths)} capture file(s)"
    talkers: Counter[str] = Counter()
    ports: Counter[str] = Counter()
    names = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6"}
    for r in records:
        try:
            first, last = float(r["first_ts"]), float(r["last_ts"])
        except (KeyError, TypeError, ValueError):
            continue
        if last < start or first > end:
            continue
        total = int(r.get("bytes") or 0) + int(r.get("rev_bytes") or 0)
        talkers[str(r["src_addr"])] += total
        talkers[str(r["dst_addr"])] += total
        proto = int(r.get("proto") or 0)
        if proto in (6, 17, 132):
            ports[f"{names[proto]}/{min(int(r['src_port']), int(r['dst_port']))}"] += total
        else:
            ports[names.get(proto, f"proto {proto}")] += total
    return talkers.most_common(top), ports.most_common(top), source


def collect(spool: Path, journal: Path, start: float, end: float) -> Window:
    w = Window(start, end)
    w.traffic = traffic(spool / "stats", start, end)
    store.refresh(spool, journal if journal.exists() else None)
    w.gaps = store.query(spool, start, end)
    if journal.exists():
        for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and r.get("event") in EVENTS and start <= float(r.get("ts", 0)) <= end:
                w.events.append(r)
    from appliance.catalog import connect

    db = connect(spool)
    try:
        w.files = [dict(r) for r in db.execute(
            "SELECT path, interface, first_ns, last_ns, packets, bytes, size, steps FROM files "
            "WHERE last_ns >= ? AND first_ns <= ? ORDER BY first_ns", (int(start * 1e9), int(end * 1e9)))]
        every = [dict(r) for r in db.execute("SELECT size, last_ns, steps FROM files ORDER BY last_ns")]
    finally:
        db.close()
    w.packets = sum(f["packets"] for f in w.files)
    w.bytes = sum(f["bytes"] for f in w.files)
    w.talkers, w.ports, w.flows_source = flows(spool, w.files, start, end)
    usage = shutil.disk_usage(spool)
    w.disk = {"total": usage.total, "used": usage.used, "spool_files": sum(f["size"] for f in every),
              "oldest_ns": float(every[0]["last_ns"] or 0) if every else 0}
    held = sum(f["size"] for f in every if f["last_ns"] is not None and f["last_ns"] / 1e9 < start)
    w.disk_series.append((start, held))
    for f in every:  # the spool's files as they closed (the ones retention deleted are gone)
        if f["last_ns"] is not None and start <= f["last_ns"] / 1e9 <= end:
            held += f["size"]
            w.disk_series.append((f["last_ns"] / 1e9, held))
    w.disk_series.append((end, held))
    backed = sum(1 for f in every if "backup" in json.loads(f["steps"] or "{}"))
    w.backup = {"files": len(every), "backed_up": backed} if backed else {}
    return w
