"""`sluice status`: a human-readable snapshot of the box from the supervisor's status.json.

The supervisor rewrites SPOOL/status.json (atomically) every state_interval; this module only
reads and formats it, so it works without talking to the running process.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError


def load_state(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise SluiceError(f"status {p}: no such file (is `sluice supervise` running with this spool?)", 1) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SluiceError(f"status {p}: cannot read: {exc}", 1) from None
    if not isinstance(data, dict) or "writers" not in data:
        raise SluiceError(f"status {p}: not a sluice status file", 1)
    return data


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def human_seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isinf(s)):
        return "never"
    s = float(s)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}min"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def _burst(w: dict[str, Any]) -> str:
    """How much of a burst the writer's memory holds (native/src/capture/memplan.h)."""
    ring, buf = w.get("ring_bytes") or 0, w.get("buffer_bytes") or 0
    text = f"memory: ring {human_bytes(ring)} + buffers {human_bytes(buf)}"
    if w.get("burst_seconds") is not None and w.get("link_bps"):
        text += f" hold {w['burst_seconds']:.2f} s of line rate ({w['link_bps'] / 1e9:g} Gbit/s) while the disk stalls"
    else:
        text += " (link speed unknown: no burst time)"
    if w.get("cpus"):
        text += f"; workers on CPUs {','.join(str(c) for c in w['cpus'])}"
    return text


def format_status(state: dict[str, Any], now: float | None = None, stale_after: float = 10.0) -> str:
    now = time.time() if now is None else now
    age = now - float(state.get("ts", 0))
    lines = [f"sluice {state.get('version', '?')} on {state.get('host', '?')}: supervisor pid {state.get('pid')}, "
             f"up {human_seconds(float(state.get('ts', now)) - float(state.get('started', now)))}, "
             f"spool {state.get('spool')}"]
    if age > stale_after:
        lines.append(f"WARNING: this status is {human_seconds(age)} old: the supervisor is not running")
    lines.append("writers:")
    for w in state.get("writers", []):
        t = w["totals"]
        status = "up" if w.get("up") else ("starting" if w.get("running") else "DOWN")
        lines.append(
            f"  {w['interface']:<10} {status:<8} pid {w.get('pid') or '-':<7} restarts {w.get('restarts', 0):<3} "
            f"{w.get('packets_per_second', 0):>9.0f} pkt/s {human_bytes(w.get('bytes_per_second', 0)) + '/s':>12}  "
            f"packets {t['packets']}  written {human_bytes(t['bytes_written'])}  files {t['files_closed']}")
        lines.append(
            f"  {'':<10} drops kernel {t['kernel_drops']} writer {t['writer_drops']} "
            f"(ratio {w.get('drop_ratio', 0):.4f})  ring {w.get('ring_fill', 0):.0%} "
            f"buffer {w.get('buffer_fill', 0):.0%}"
            f"  newest file {human_seconds(w.get('newest_file_age_seconds'))} ago"
            + (f"  DISK ERROR {w['disk_error']}" if w.get("disk_error") else "")
            + (f"  last restart: {w['restart_reason']}" if w.get("restart_reason") else ""))
        if w.get("buffer_bytes") is not None:
            lines.append(f"  {'':<10} {_burst(w)}")
    d = state.get("disk")
    if d:
        eta = d.get("full_eta_seconds")
        lines.append(
            f"disk: {d['path']} free {human_bytes(d['free_bytes'])} of {human_bytes(d['size_bytes'])} "
            f"(floor {human_bytes(d.get('floor_bytes'))}), {d['free_inodes']} inodes, "
            f"filling {human_bytes(d['write_bytes_per_second'])}/s, full in {human_seconds(eta) if eta else 'never'}"
            + (", READ-ONLY" if d.get("read_only") else ""))
        ret = state.get("retention", {})
        oldest = d.get("oldest_file_age_seconds")
        lines.append(f"spool: {d.get('spool_files', 0)} closed files"
                     + (f", the oldest {human_seconds(oldest)} old" if oldest is not None else "")
                     + f"; retention deleted {ret.get('deleted_files_total', 0)} files "
                     f"({human_bytes(ret.get('deleted_bytes_total', 0))})")
    raid = state.get("raid") or []
    if raid:
        for a in raid:
            sync = "" if a["sync_action"] == "idle" else f", {a['sync_action']} {a['sync_progress']:.1%}"
            lines.append(f"raid: {a['array']} {a.get('level') or ''} {'DEGRADED' if a['degraded'] else 'ok'} "
                         f"({a['active_members']}/{a.get('raid_disks') or '?'} active, {a['failed_members']} failed, "
                         f"{a['spare_members']} spare{sync})")
    else:
        lines.append("raid: no md arrays")
    for s in state.get("smart") or []:
        health = {True: "healthy", False: "FAILING", None: "unknown"}[s.get("healthy")]
        lines.append(f"smart: {s['device']} {health}" + (f" ({s['message']})" if s.get("message") else ""))
    t = state.get("time")
    if t:
        lines.append(f"time: {'synchronised' if t['synchronized'] else 'NOT synchronised'} ({t['source']}), "
                     f"offset {t['offset_seconds'] * 1000:+.3f} ms, max error {t['max_error_seconds'] * 1000:.1f} ms, "
                     f"{t['steps_total']} steps")
    for n in state.get("nic") or []:
        if not n.get("present"):
            lines.append(f"nic: {n['interface']} MISSING")
            continue
        drift = [k for k, v in (n.get("drift") or {}).items() if v]
        lines.append(
            f"nic: {n['interface']} link {'up' if n['link_up'] else 'DOWN'}, "
            f"speed {n['speed_bps'] // 1_000_000 if n['speed_bps'] else '?'} Mb/s, rx {n['rx_packets']} packets, "
            f"missed {n['rx_missed']}, dropped {n['rx_dropped']}, carrier changes {n['carrier_changes']}"
            + (f", SPAN DEAD (no packet for {human_seconds(n['seconds_since_packet'])})" if n.get("span_dead") else "")
            + (f", tuning drift: {', '.join(drift)}" if drift else ""))
    return "\n".join(lines)
