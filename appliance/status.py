"""`sluice status`: a human-readable snapshot of the box from the supervisor's status.json.

The supervisor rewrites SPOOL/status.json (atomically) every state_interval; this module only
reads and formats it, so it works without talking to the running process.
"""

from __future__ import annotations

import errno
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.snapshot import Snapshot, WriterSnapshot, snapshot_from_json
from appliance.watchdogs import load_all
from appliance.watchdogs.disk import human_bytes, human_seconds

# A status older than this many state intervals means the supervisor stopped rewriting it.
STALE_INTERVALS = 5
STALE_MIN_SECONDS = 10.0
# status.json is padded with white space to a multiple of this, so that when the spool is full
# it can still be rewritten in place, in the blocks it already has (see write_state).
PAD = 16384


def write_state(path: Path, text: str) -> None:
    """Replace path with text atomically (a reader never sees half a file); when the disk is
    full, overwrite the old file in place within its own blocks instead, so the status stays
    true on a full spool. Raises OSError when neither works (read-only spool)."""
    padded = text + " " * (-(len(text) + 1) % PAD) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(padded)
        os.replace(tmp, path)
        return
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size < len(padded):
            raise OSError(errno.ENOSPC, "status.json grew and the disk is full")
        os.pwrite(fd, padded.encode(), 0)
        os.ftruncate(fd, len(padded))
    finally:
        os.close(fd)


def load_state(path: str | Path, attempts: int = 3) -> dict[str, Any]:
    """status.json as written by the supervisor; one line (SluiceError) for anything else."""
    p = Path(path)
    for attempt in range(attempts):
        try:
            data = json.loads(p.read_bytes())
            break
        except FileNotFoundError:
            raise SluiceError(f"status {p}: no such file (is `sluice supervise` running with this spool?)",
                              1) from None
        except OSError as exc:
            raise SluiceError(f"status {p}: cannot read: {exc.strerror or exc}", 1) from None
        except RecursionError:
            raise SluiceError(f"status {p}: not a sluice status file (nested too deeply)", 1) from None
        except ValueError as exc:  # JSON or UTF-8; an in-place rewrite may be under way: look again
            if attempt == attempts - 1:
                raise SluiceError(f"status {p}: not a sluice status file ({exc.__class__.__name__})", 1) from None
            time.sleep(0.05)
    if not isinstance(data, dict) or not isinstance(data.get("writers"), list):
        raise SluiceError(f"status {p}: not a sluice status file", 1)
    return data


def stale_after(state: dict[str, Any]) -> float:
    interval = state.get("state_interval")
    if isinstance(interval, int | float) and not isinstance(interval, bool) and math.isfinite(interval):
        return max(STALE_INTERVALS * float(interval), STALE_MIN_SECONDS)
    return STALE_MIN_SECONDS


def supervisor_alive(pid: object) -> bool:
    """Whether pid is a running `sluice supervise` (not another process that reused the pid)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"supervise" in argv


def _burst(w: WriterSnapshot) -> str:
    """How much of a burst the writer's memory holds (native/src/capture/memplan.h)."""
    text = f"memory: ring {human_bytes(w.ring_bytes or 0)} + buffers {human_bytes(w.buffer_bytes or 0)}"
    if w.burst_seconds is not None and w.link_bps:
        text += f" hold {w.burst_seconds:.2f} s of line rate ({w.link_bps / 1e9:g} Gbit/s) while the disk stalls"
    else:
        text += " (link speed unknown: no burst time)"
    if w.cpus:
        text += f"; workers on CPUs {','.join(str(c) for c in w.cpus)}"
    return text


def status_age(state: dict[str, Any], now: float | None = None) -> float:
    now = time.time() if now is None else now
    ts = state.get("ts")
    return now - float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else math.inf


def is_stale(state: dict[str, Any], now: float | None = None) -> bool:
    return status_age(state, now) > stale_after(state)


def format_status(state: dict[str, Any], now: float | None = None) -> str:
    """The human form; raises SluiceError when the document is not what the supervisor writes."""
    try:
        snapshot = snapshot_from_json(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise SluiceError(f"status: not a sluice status file ({str(exc)[:80]})", 1) from None
    return format_snapshot(snapshot, time.time() if now is None else now)


def format_snapshot(snap: Snapshot, now: float) -> str:
    age = now - snap.ts
    lines = [f"sluice {snap.version} on {snap.host}: supervisor pid {snap.pid}, "
             f"up {human_seconds(snap.ts - snap.started)}, spool {snap.spool}, as of {human_seconds(age)} ago"]
    if age > stale_after({"state_interval": snap.state_interval}):
        if supervisor_alive(snap.pid):
            lines.append(f"WARNING: this status is {human_seconds(age)} old: the supervisor (pid {snap.pid}) "
                         f"runs but cannot rewrite {snap.spool}/status.json (spool read-only?); "
                         f"live values: http://{snap.metrics_listen}/metrics")
        else:
            lines.append(f"WARNING: this status is {human_seconds(age)} old: the supervisor is not running")
    lines.append("writers:")
    for w in snap.writers:
        t = w.totals
        state = "up" if w.up else ("starting" if w.running else "DOWN")
        lines.append(
            f"  {w.interface:<10} {state:<8} pid {w.pid or '-':<7} restarts {w.restarts:<3} "
            f"{w.packets_per_second:>9.0f} pkt/s {human_bytes(w.bytes_per_second) + '/s':>12}  "
            f"packets {t.get('packets', 0)}  written {human_bytes(t.get('bytes_written', 0))}  "
            f"files {t.get('files_closed', 0)}")
        lines.append(
            f"  {'':<10} drops kernel {t.get('kernel_drops', 0)} writer {t.get('writer_drops', 0)} "
            f"(ratio {w.drop_ratio:.4f})  ring {w.ring_fill:.0%} buffer {w.buffer_fill:.0%}"
            f"  newest file {human_seconds(w.newest_file_age_seconds)} ago"
            + (f"  DISK ERROR {w.disk_error}" if w.disk_error else "")
            + (f"  last restart: {w.restart_reason}" if w.restart_reason else ""))
        if w.buffer_bytes is not None:
            lines.append(f"  {'':<10} {_burst(w)}")
    ret = snap.retention
    registry = load_all()
    for name, run in snap.watchdogs.items():
        kind = registry.get(name)
        if kind is None:
            continue
        if run.reading is None:
            lines.append(f"{name}: CHECK FAILED ({run.error})")
            continue
        lines.extend(kind.describe(run.reading))
        if name == "disk":
            lines.append(f"retention: deleted {ret.deleted_files_total} files ({human_bytes(ret.deleted_bytes_total)})"
                         f", floor {ret.min_free}")
    if ret.blocked:
        lines.append(f"RETENTION BLOCKED: other files ({human_bytes(ret.other_bytes)}) fill the spool "
                     "beyond the floor; no capture is deleted for them: free the space")
    return "\n".join(lines)
