"""Maintenance windows: a TOML file of `[[window]]` tables (start, end, boxes, reason).

Each pass, every window that concerns this box (its host name in `boxes`, or "*") and was not yet
journaled becomes one journal `maintenance` event (start, end, boxes, reason: the gap ledger marks
its seconds `maintenance`), and every window not yet silenced and not over becomes an
Alertmanager silence (POST /api/v2/silences, matcher `instance=~"(box1|box2)(:PORT)?"`, or every
instance for "*"). What was done is kept in SPOOL/meta/maintenance/state.json, so a window is
journaled and silenced once; a silence that failed (Alertmanager down) is tried again next pass.
The file's windows are stored (JSON) with the collection time when they changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.journal import Journal
from appliance.meta.collect import Outcome, latest, store
from appliance.timespec import format_ns, parse


def load(path: Path) -> list[dict[str, Any]]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SluiceError(f"maintenance windows {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SluiceError(f"maintenance windows {path}: not TOML: {exc}") from None
    windows = []
    for number, w in enumerate(doc.get("window", []), start=1):
        where = f"maintenance windows {path}: window {number}"
        if not isinstance(w, dict) or not {"start", "end", "boxes", "reason"} <= set(w):
            raise SluiceError(f"{where}: needs start, end, boxes, reason")
        start = parse(str(w["start"]), what=f"{where} start") / 1e9
        end = parse(str(w["end"]), what=f"{where} end") / 1e9
        boxes = w["boxes"]
        if end <= start or not isinstance(boxes, list) or not all(isinstance(b, str) for b in boxes):
            raise SluiceError(f"{where}: end must be after start and boxes a list of host names")
        ident = hashlib.sha256(json.dumps([start, end, sorted(boxes), str(w["reason"])]).encode()).hexdigest()[:16]
        windows.append({"id": ident, "start": start, "end": end, "boxes": sorted(boxes), "reason": str(w["reason"])})
    return windows


def silence(url: str, window: dict[str, Any]) -> str:
    boxes = window["boxes"]
    value = ".*" if "*" in boxes else "(" + "|".join(re.escape(b) for b in boxes) + r")(:[0-9]+)?"
    body = {"matchers": [{"name": "instance", "value": value, "isRegex": True, "isEqual": True}],
            "startsAt": format_ns(round(window["start"] * 1e9)), "endsAt": format_ns(round(window["end"] * 1e9)),
            "createdBy": "sluice meta collect", "comment": f"maintenance: {window['reason']}"}
    req = urllib.request.Request(url.rstrip("/") + "/api/v2/silences", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(json.load(resp)["silenceID"])
    except (OSError, ValueError, KeyError) as exc:
        raise SluiceError(f"alertmanager {url}: silence not set: {exc}") from None


def apply(path: Path, spool: Path, journal: Journal, host: str, alertmanager: str) -> Outcome:
    out = Outcome("maintenance", "maintenance", ok=False, attempts=1)
    state_path = spool / "meta" / "maintenance" / "state.json"
    try:
        windows = load(path)
    except SluiceError as exc:
        out.error = str(exc)
        journal.append("meta_source_failed", source="maintenance", kind="maintenance", attempts=1, error=out.error)
        return out
    text = json.dumps(windows, indent=1, sort_keys=True) + "\n"
    prev = latest(spool, "maintenance", "windows")
    if prev is None or prev.read_text() != text:
        out.path = store(spool, "maintenance", "windows", text, time.time())
        out.changed = prev is not None
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    errors = []
    now = time.time()
    for w in windows:
        done = state.setdefault(w["id"], {})
        if not done.get("journaled") and (host in w["boxes"] or "*" in w["boxes"]):
            journal.append("maintenance", window=w["id"], start=w["start"], end=w["end"], boxes=w["boxes"],
                           reason=w["reason"])
            done["journaled"] = True
        if alertmanager and not done.get("silence") and w["end"] > now:
            try:
                done["silence"] = silence(alertmanager, w)
                journal.append("maintenance_silenced", window=w["id"], silence=done["silence"], url=alertmanager)
            except SluiceError as exc:
                errors.append(str(exc))
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state, indent=1))
    out.details = {"windows": len(windows)}
    if errors:
        out.error = errors[0]
        journal.append("meta_source_failed", source="maintenance", kind="maintenance", attempts=1, error=out.error)
    else:
        out.ok = True
    return out
