"""Merging the captures of several boxes by time, each file corrected by its box's clock.

Each supervisor journals its clock (`clock` events of the time watchdog: host, offset from true
time, error bound) every `[watchdogs] clock_journal_interval`. A file's box is the host in its
name (`HOST_IFACE_START_SEQ.pcapng`); its correction is minus the box's offset at the middle of
the file (interpolated between the two `clock` events around it), and its uncertainty is the
larger error bound of those events plus half of how far the offset moved across the file (one
shift is applied per file). Outside the journaled span the nearest event is used and the bound
grows by MAX_DRIFT per second of distance. `sluice-pcap merge --offset FILE=SECONDS` does the
merging.
"""

from __future__ import annotations

import bisect
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appliance.catalog import FILE_NAME, find_pcap_binary
from appliance.errors import SluiceError
from appliance.journal import read_events

# The kernel lets a disciplined clock's frequency be off by at most 500 ppm (MAXFREQ): the
# worst drift away from the nearest measurement.
MAX_DRIFT = 500e-6
# Further than this from any `clock` event the box's offset is not known at all.
MAX_DISTANCE = 6 * 3600.0


@dataclass(frozen=True)
class ClockPoint:
    ts: float
    offset: float
    error: float


@dataclass(frozen=True)
class Correction:
    path: str
    host: str
    shift_seconds: float        # added to every timestamp of the file (minus the box's offset)
    uncertainty_seconds: float  # how far the corrected times may still be from true time


def read_clocks(journals: list[Path]) -> dict[str, list[ClockPoint]]:
    """Every box's `clock` events from the journals given, in time order."""
    clocks: dict[str, list[ClockPoint]] = {}
    for journal in journals:
        if not journal.is_file():
            raise SluiceError(f"{journal}: no such journal", 2)
        for ev in read_events(journal, "clock"):
            try:
                point = ClockPoint(float(ev["ts"]), float(ev["offset_seconds"]), float(ev["error_seconds"]))
                host = str(ev["host"])
            except (KeyError, TypeError, ValueError):
                continue
            clocks.setdefault(host, []).append(point)
    for points in clocks.values():
        points.sort(key=lambda p: p.ts)
    return clocks


def offset_at(points: list[ClockPoint], t: float) -> tuple[float, float] | None:
    """(offset, error bound) of the box's clock at time t, or None when no event is near enough."""
    if not points:
        return None
    i = bisect.bisect_left([p.ts for p in points], t)
    if 0 < i < len(points):
        a, b = points[i - 1], points[i]
        share = (t - a.ts) / (b.ts - a.ts) if b.ts > a.ts else 0.0
        return a.offset + share * (b.offset - a.offset), max(a.error, b.error)
    nearest = points[0] if i == 0 else points[-1]
    distance = abs(t - nearest.ts)
    if distance > MAX_DISTANCE:
        return None
    return nearest.offset, nearest.error + MAX_DRIFT * distance


def _times(binary: str, path: Path) -> tuple[float, float]:
    proc = subprocess.run([binary, "info", "--json", str(path)], capture_output=True, text=True)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SluiceError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                          f"{path}: sluice-pcap info failed", 2)
    info = json.loads(proc.stdout)
    if not info.get("packets"):
        raise SluiceError(f"{path}: no packets, nothing to place in time", 2)
    return info["first_ns"] / 1e9, info["last_ns"] / 1e9


def correction(path: Path, clocks: dict[str, list[ClockPoint]], binary: str) -> Correction:
    m = FILE_NAME.match(path.name)
    if m is None:
        raise SluiceError(f"{path}: not a Sluice capture name (HOST_IFACE_START_SEQ.pcapng), so its box is "
                          "unknown", 2)
    host = m.group("host")
    if host not in clocks:
        raise SluiceError(f"{path}: the journals given have no clock record of box '{host}' "
                          f"(give its SPOOL/journal.jsonl with --journal)", 2)
    first, last = _times(binary, path)
    ends = [offset_at(clocks[host], t) for t in (first, last)]
    if ends[0] is None or ends[1] is None:
        raise SluiceError(f"{path}: box '{host}' has no clock record within {MAX_DISTANCE / 3600:g} h of "
                          "this file's packets", 2)
    (o_first, e_first), (o_last, e_last) = ends  # type: ignore[misc]
    middle = offset_at(clocks[host], (first + last) / 2)
    assert middle is not None
    return Correction(str(path), host, -middle[0], max(e_first, e_last) + abs(o_last - o_first) / 2)


@dataclass
class MergeResult:
    corrections: list[Correction]
    packets: int
    uncertainty_seconds: float  # two packets of different boxes closer than this may be swapped


def merge(files: list[Path], journals: list[Path], output: str, binary: str | None = None) -> MergeResult:
    binary = binary or find_pcap_binary()
    if not files:
        raise SluiceError("no files to merge", 2)
    clocks = read_clocks(journals)
    corrections = [correction(f, clocks, binary) for f in files]
    cmd = [binary, "merge", "--json", "-o", output]
    for c in corrections:
        cmd += ["--offset", f"{c.path}={c.shift_seconds:.9f}"]
    proc = subprocess.run(cmd + [c.path for c in corrections], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SluiceError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                          f"sluice-pcap merge exited {proc.returncode}", proc.returncode)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    per_box: dict[str, float] = {}
    for c in corrections:
        per_box[c.host] = max(per_box.get(c.host, 0.0), c.uncertainty_seconds)
    worst = sorted(per_box.values(), reverse=True)
    # within one box the clock is one clock: only between boxes do the errors add up
    between = worst[0] + worst[1] if len(worst) > 1 else 0.0
    return MergeResult(corrections, int(summary.get("packets_out", 0)), between)


def describe(result: MergeResult) -> list[str]:
    lines = []
    hosts = sorted({c.host for c in result.corrections})
    for host in hosts:
        mine = [c for c in result.corrections if c.host == host]
        shifts = [c.shift_seconds for c in mine]
        lines.append(f"{host}: {len(mine)} file(s) shifted by {min(shifts) * 1e3:+.3f}..{max(shifts) * 1e3:+.3f} ms, "
                     f"each within ±{max(c.uncertainty_seconds for c in mine) * 1e3:.3f} ms of true time")
    if len(hosts) > 1:
        lines.append(f"merged {result.packets} packet(s); packets of different boxes less than "
                     f"{result.uncertainty_seconds * 1e3:.3f} ms apart may be out of order")
    else:
        lines.append(f"merged {result.packets} packet(s)")
    return lines


def to_json(result: MergeResult) -> dict[str, object]:
    return {"packets": result.packets, "uncertainty_seconds": result.uncertainty_seconds,
            "files": [{"path": os.fspath(c.path), "host": c.host, "shift_seconds": c.shift_seconds,
                       "uncertainty_seconds": c.uncertainty_seconds} for c in result.corrections]}
