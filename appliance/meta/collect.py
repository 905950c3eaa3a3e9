"""`sluice meta collect`: one pass over every metadata source of the config's [meta] section.

Each result is stored with its collection time as `SPOOL/meta/<kind>/<name>/<UTC time>.<ext>`
(written under a temporary name and renamed), and catalogued in the spool's catalog table
`meta_files` (path, kind, source, collected_ns, size, sha256, state, steps: the same state/steps
columns as `files`, so the post-capture pipeline backs them up like capture files). A source that
fails is tried again (`retries`, `retry_delay`), then reported in the journal
(`meta_source_failed`) and in metrics (`SPOOL/meta/metrics.prom`, Prometheus text format), and
the pass goes on with the others; it never touches the capture.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.journal import Journal

log = logging.getLogger("sluice.meta")

KINDS = ("dns", "dhcp", "device")
META_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta_files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the spool: meta/<kind>/<source>/<time>.<ext>
    kind TEXT NOT NULL,                 -- dns | dhcp | device | maintenance
    source TEXT NOT NULL,
    collected_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'closed',  -- as files.state: the pipeline's backup step moves it on
    steps TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS meta_files_time ON meta_files (kind, source, collected_ns);
"""
EXT = {"dns": "zone", "dhcp": "csv", "device": "txt", "maintenance": "json"}


def check_source(raw: Any) -> dict[str, Any]:
    """One [[meta.sources]] table, checked (ValueError says what is wrong)."""
    if not isinstance(raw, dict):
        raise ValueError("a table")
    src = dict(raw)
    name, kind = src.get("name"), src.get("kind")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError("name: a non-empty name without '/'")
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    if kind == "dns" and not (isinstance(src.get("server"), str) and isinstance(src.get("zone"), str)):
        raise ValueError("dns: server and zone (strings)")
    if kind == "dhcp":
        from appliance.meta.dhcp import PARSERS

        if src.get("format") not in PARSERS or not isinstance(src.get("path"), str):
            raise ValueError(f"dhcp: format ({', '.join(PARSERS)}) and path")
    if kind == "device" and not (src.get("commands") or src.get("files")):
        raise ValueError("device: commands and/or files (lists)")
    return src


@dataclass
class Outcome:
    source: str
    kind: str
    ok: bool
    path: str | None = None
    changed: bool = False
    error: str | None = None
    attempts: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def meta_dir(spool: Path) -> Path:
    return spool / "meta"


def catalog_db(spool: Path) -> sqlite3.Connection:
    from appliance.catalog import connect

    db = connect(spool)
    db.executescript(META_SCHEMA)
    return db


def latest(spool: Path, kind: str, name: str) -> Path | None:
    folder = meta_dir(spool) / kind / name
    copies = sorted(p for p in folder.glob(f"*.{EXT[kind]}")) if folder.is_dir() else []
    return copies[-1] if copies else None


def store(spool: Path, kind: str, name: str, text: str, when: float) -> str:
    """Write one result and catalogue it; returns its path relative to the spool."""
    stamp = dt.datetime.fromtimestamp(when, tz=dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    rel = f"meta/{kind}/{name}/{stamp}.{EXT[kind]}"
    path = spool / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    db = catalog_db(spool)
    try:
        with db:
            db.execute("INSERT OR REPLACE INTO meta_files (path, kind, source, collected_ns, size, sha256) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (rel, kind, name, round(when * 1e9), len(data),
                                                     hashlib.sha256(data).hexdigest()))
    finally:
        db.close()
    return rel


def _fetch(src: dict[str, Any], spool: Path) -> tuple[str, dict[str, Any]]:
    from appliance.meta import sources

    kind = src["kind"]
    if kind == "dns":
        from appliance.meta.dns import transfer

        prev = latest(spool, "dns", src["name"])
        return transfer(src, prev.read_text() if prev else None)
    if kind == "dhcp":
        from appliance.meta.dhcp import PARSERS, to_csv

        rows = PARSERS[src["format"]](sources.read(src, src["path"]))
        return to_csv(rows), {"leases": len(rows)}
    parts = []
    for command in src.get("commands", []):
        parts.append(f"### command: {command if isinstance(command, str) else ' '.join(command)}\n"
                     + sources.run(src, command))
    for file in src.get("files", []):
        parts.append(f"### file: {file}\n" + sources.read(src, file))
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts), {}


def collect_source(src: dict[str, Any], spool: Path, journal: Journal, retries: int = 2,
                   retry_delay: float = 5.0) -> Outcome:
    out = Outcome(src["name"], src["kind"], ok=False)
    for attempt in range(1, retries + 2):
        out.attempts = attempt
        when = time.time()
        try:
            text, out.details = _fetch(src, spool)
        except SluiceError as exc:
            out.error = str(exc)
            log.warning("meta %s: attempt %d: %s", src["name"], attempt, exc)
            if attempt <= retries:
                time.sleep(retry_delay)
            continue
        except Exception as exc:  # a source must never stop the others: report whatever it raised
            out.error = f"{type(exc).__name__}: {exc}"
            log.warning("meta %s: attempt %d: %s", src["name"], attempt, out.error)
            if attempt <= retries:
                time.sleep(retry_delay)
            continue
        prev = latest(spool, src["kind"], src["name"])
        old = prev.read_text() if prev else None
        out.path = store(spool, src["kind"], src["name"], text, when)
        out.ok, out.error = True, None
        if src["kind"] == "device" and old is not None and old != text:
            diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), str(prev.relative_to(spool)),
                                             out.path, lineterm=""))
            (spool / out.path).with_suffix(".diff").write_text("\n".join(diff) + "\n")
            out.changed = True
            journal.append("meta_config_changed", source=src["name"], path=out.path,
                           previous=str(prev.relative_to(spool)),
                           added=sum(1 for d in diff if d.startswith("+") and not d.startswith("+++")),
                           removed=sum(1 for d in diff if d.startswith("-") and not d.startswith("---")))
        journal.append("meta_collected", source=src["name"], kind=src["kind"], path=out.path,
                       attempts=attempt, **{k: v for k, v in out.details.items() if k != "method"},
                       **({"method": out.details["method"]} if "method" in out.details else {}))
        return out
    journal.append("meta_source_failed", source=src["name"], kind=src["kind"], attempts=out.attempts,
                   error=out.error)
    return out


def write_metrics(spool: Path, outcomes: list[Outcome], now: float) -> None:
    """SPOOL/meta/metrics.prom (node_exporter textfile format) and SPOOL/meta/status.json."""
    status_path = meta_dir(spool) / "status.json"
    try:
        status = json.loads(status_path.read_text())
    except (OSError, ValueError):
        status = {}
    for o in outcomes:
        s = status.setdefault(o.source, {"kind": o.kind, "failures_total": 0, "last_success": None})
        s["kind"], s["up"], s["last_attempt"], s["error"] = o.kind, o.ok, now, o.error
        if o.ok:
            s["last_success"], s["consecutive_failures"] = now, 0
        else:
            s["failures_total"] += 1
            s["consecutive_failures"] = s.get("consecutive_failures", 0) + 1
    lines = ["# HELP sluice_meta_source_up 1 if the source's last collection worked",
             "# TYPE sluice_meta_source_up gauge"]
    lines += [f'sluice_meta_source_up{{source="{n}",kind="{s["kind"]}"}} {int(s["up"])}' for n, s in status.items()]
    lines += ["# HELP sluice_meta_last_success_timestamp_seconds when the source last gave a result",
              "# TYPE sluice_meta_last_success_timestamp_seconds gauge"]
    lines += [f'sluice_meta_last_success_timestamp_seconds{{source="{n}",kind="{s["kind"]}"}} '
              f'{s["last_success"] or 0}' for n, s in status.items()]
    lines += ["# HELP sluice_meta_failures_total passes in which the source failed after its retries",
              "# TYPE sluice_meta_failures_total counter"]
    lines += [f'sluice_meta_failures_total{{source="{n}",kind="{s["kind"]}"}} {s["failures_total"]}'
              for n, s in status.items()]
    meta_dir(spool).mkdir(parents=True, exist_ok=True)
    for path, text in ((status_path, json.dumps(status, indent=1)), (meta_dir(spool) / "metrics.prom",
                                                                      "\n".join(lines) + "\n")):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def collect(meta: dict[str, Any], spool: Path, journal_path: Path, host: str) -> list[Outcome]:
    """One pass: every source, then the maintenance windows. Never raises for a source."""
    from appliance.meta import maintenance

    outcomes = []
    with Journal(journal_path) as journal:
        for src in meta["sources"]:
            outcomes.append(collect_source(src, spool, journal, meta["retries"], meta["retry_delay"]))
        if meta["maintenance"]:
            outcomes.append(maintenance.apply(Path(meta["maintenance"]), spool, journal, host,
                                              meta["alertmanager"]))
    write_metrics(spool, outcomes, time.time())
    return outcomes
