"""Retention: keep the spool's free space above a floor by deleting the oldest closed files.

Only as many files go as are needed to get back above the floor plus a small margin, oldest
first; never a file still being written (.part names are not capture files), never one younger
than min_age, never one held: the pipeline holds a file it still needs by creating an entry of
the same name in SPOOL/.hold/ (any file or symlink) and releases it by removing that entry.
Each deletion is journaled and counted by the caller's metrics.

With `require_backup` (the supervisor sets it when `[pipeline] backup` has a target), a file is
held too until the catalog records its backup as verified on every target
(catalog.backed_up): retention never deletes a raw file before it is backed up. When that holds
the spool under the floor, the result says how many bytes wait for backup; the supervisor
journals it (`retention_waiting_for_backup`) and exports it as a metric.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.catalog import backed_up, relative
from appliance.catalog import forget as catalog_forget
from appliance.config import FreeFloor
from appliance.journal import Journal
from appliance.watchdogs.disk import CaptureFile, capture_files, statvfs

log = logging.getLogger("sluice.retention")


@dataclass
class RetentionResult:
    deleted: list[CaptureFile] = field(default_factory=list)
    freed_bytes: int = 0
    short_bytes: int = 0  # still missing to reach the floor (nothing left that may be deleted)
    waiting_for_backup_bytes: int = 0  # held back only because not backed up yet (while short)
    waiting_for_backup_files: int = 0


HOLD_DIR = ".hold"


def held_names(spool: str | os.PathLike[str]) -> set[str]:
    """Names of the capture files the pipeline holds (entries of SPOOL/.hold/)."""
    try:
        return set(os.listdir(os.path.join(spool, HOLD_DIR)))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def plan(files: list[CaptureFile], free: int, fs_size: int, floor: FreeFloor, margin: FreeFloor,
         now: float, min_age: float = 0.0, headroom: int = 0,
         held: set[str] | frozenset[str] = frozenset()) -> tuple[list[CaptureFile], int]:
    """Which files to delete (oldest first) and how many bytes would still be missing.

    headroom raises the floor by what the disk will fill before the next check, so free space
    stays above the floor between checks instead of dipping under it and coming back.
    """
    floor_bytes = floor.bytes_for(fs_size) + max(headroom, 0)
    if free >= floor_bytes:
        return [], 0
    need = floor_bytes + margin.bytes_for(fs_size) - free
    chosen: list[CaptureFile] = []
    for f in files:
        if need <= 0:
            break
        if now - f.mtime < min_age or f.path.name in held:
            continue
        chosen.append(f)
        need -= f.size
    return chosen, max(floor_bytes - (free + sum(f.size for f in chosen)), 0)


def enforce(spool: str | os.PathLike[str], floor: FreeFloor, margin: FreeFloor, journal: Journal | None,
            min_age: float = 0.0, now: float | None = None, headroom: int = 0,
            require_backup: bool = False) -> RetentionResult:
    free, size, _inodes, read_only = statvfs(spool)
    result = RetentionResult()
    if read_only or free >= floor.bytes_for(size) + headroom:
        return result
    files = capture_files(spool)
    now = time.time() if now is None else now
    held = held_names(spool)
    unsaved: list[CaptureFile] = []
    if require_backup:
        saved = backed_up(spool)
        unsaved = [f for f in files if relative(Path(spool), f.path) not in saved and f.path.name not in held]
        held |= {f.path.name for f in unsaved}
    chosen, result.short_bytes = plan(files, free, size, floor, margin, now, min_age, headroom, held)
    if result.short_bytes and unsaved:
        result.waiting_for_backup_files = len(unsaved)
        result.waiting_for_backup_bytes = sum(f.size for f in unsaved)
    for f in chosen:
        try:
            os.unlink(f.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", f.path, exc)
            continue
        catalog_forget(spool, f.path)  # the file leaves the catalog in the same step
        result.deleted.append(f)
        result.freed_bytes += f.size
        if journal is not None:
            journal.append("retention_delete", path=str(f.path), bytes=f.size,
                           age_seconds=round(now - f.mtime, 3), free_bytes=free,
                           floor_bytes=floor.bytes_for(size), headroom_bytes=headroom)
    if result.short_bytes and journal is not None:
        journal.append("retention_short", missing_bytes=result.short_bytes, floor_bytes=floor.bytes_for(size))
    if result.waiting_for_backup_files and journal is not None:
        journal.append("retention_waiting_for_backup", files=result.waiting_for_backup_files,
                       bytes=result.waiting_for_backup_bytes, missing_bytes=result.short_bytes)
    return result
