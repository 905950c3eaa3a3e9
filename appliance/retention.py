"""Retention: keep the spool's free space above a floor by deleting the oldest closed files.

The rules, each there because a flood broke its absence:
- Oldest first, and only as many as the floor (plus the configured margin) needs; the newest
  data stays.
- The floor is raised by what the disk fills before the next check (fill rate x interval x 2),
  but by no more than MAX_HEADROOM_SHARE of the filesystem: a 210 MB/s flood into a 200 MiB spool
  once made the raised floor bigger than the disk, and retention deleted files 0.03 s old.
- The newest closed file of each writer (host_interface) is never deleted: a flood must leave
  the last complete file behind, not an empty spool.
- Never a file still being written (.part names are not capture files), never one younger than
  min_age, never one held: the pipeline holds a file it still needs by creating an entry of the
  same name in SPOOL/.hold/ (any file or symlink) and releases it by removing that entry.
- Captures are deleted only to make room for captures. When other files (not captures, not
  their .part files, not Sluice's own catalog, index, journal or status) take OTHER_FILES_SHARE
  or more of the space above the floor, the spool is
  full of something else: deleting captures for it would destroy the evidence to keep someone's
  ISO image. Nothing is deleted, and the state is reported as `blocked` (journal
  `retention_blocked`, metric sluice_retention_blocked, alert SluiceSpoolFullOfOtherFiles)
  until the operator frees the space.
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
from appliance.catalog import forget_soon as catalog_forget
from appliance.config import FreeFloor
from appliance.journal import Journal
from appliance.selftest.run import WORK_PREFIX as SELFTEST_WORK_PREFIX
from appliance.watchdogs.disk import CaptureFile, capture_files, is_capture_file, statvfs

log = logging.getLogger("sluice.retention")

# The fill-rate headroom added to the floor is capped at this share of the filesystem.
MAX_HEADROOM_SHARE = 0.10
# Other files taking this share of the space above the floor block retention (see above).
OTHER_FILES_SHARE = 0.5
HOLD_DIR = ".hold"
PART_SUFFIX = ".part"


@dataclass
class RetentionResult:
    deleted: list[CaptureFile] = field(default_factory=list)
    freed_bytes: int = 0
    short_bytes: int = 0  # still missing to reach the floor (nothing left that may be deleted)
    waiting_for_backup_bytes: int = 0  # held back only because not backed up yet (while short)
    waiting_for_backup_files: int = 0
    # Bytes on the spool filesystem that are neither closed captures nor files being written;
    # measured only when free space is under the floor (None: not measured this time).
    other_bytes: int | None = None
    blocked: bool = False  # other files fill the spool: nothing deleted


def held_names(spool: str | os.PathLike[str]) -> set[str]:
    """Names of the capture files the pipeline holds (entries of SPOOL/.hold/)."""
    try:
        return set(os.listdir(os.path.join(spool, HOLD_DIR)))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def writer_key(name: str) -> str:
    """The writer a capture file belongs to: `host_interface` of host_interface_START_SEQ.ext
    ("" for a name of another shape: such files count as one writer's)."""
    parts = name.rsplit("_", 2)
    return parts[0] if len(parts) == 3 else ""


def newest_per_writer(files: list[CaptureFile]) -> set[Path]:
    """The newest closed file of each writer (files are oldest first)."""
    newest: dict[str, Path] = {}
    for f in files:
        newest[writer_key(f.path.name)] = f.path
    return set(newest.values())


def capped_headroom(headroom: int, fs_size: int) -> int:
    return min(max(headroom, 0), int(fs_size * MAX_HEADROOM_SHARE))


def plan(files: list[CaptureFile], free: int, fs_size: int, floor: FreeFloor, margin: FreeFloor,
         now: float, min_age: float = 0.0, headroom: int = 0,
         held: set[str] | frozenset[str] = frozenset()) -> tuple[list[CaptureFile], int]:
    """Which files to delete (oldest first) and how many bytes would still be missing.

    headroom raises the floor by what the disk will fill before the next check (capped at
    MAX_HEADROOM_SHARE of the filesystem), so free space stays above the floor between checks.
    """
    floor_bytes = floor.bytes_for(fs_size) + capped_headroom(headroom, fs_size)
    if free >= floor_bytes:
        return [], 0
    need = floor_bytes + margin.bytes_for(fs_size) - free
    keep = newest_per_writer(files)
    chosen: list[CaptureFile] = []
    for f in files:
        if need <= 0:
            break
        if now - f.mtime < min_age or f.path.name in held or f.path in keep:
            continue
        chosen.append(f)
        need -= f.size
    return chosen, max(floor_bytes - (free + sum(f.size for f in chosen)), 0)


def allocated(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


# Sluice's own files beside the captures: the catalog's index sidecars, the stats lines of the
# gap ledger, a running self-test's work folder, the catalog, the journal, the status, the
# self-test result, the pipeline's holds, lock and progress file. They go with the captures,
# so they are not "other files".
OWN_DIRS = (".index", "stats", HOLD_DIR)
OWN_DIR_PREFIXES = (SELFTEST_WORK_PREFIX,)
OWN_FILE_PREFIXES = ("catalog.sqlite", "journal.jsonl", "status.json", ".status.json", "selftest.json",
                     ".pipeline.lock", "pipeline.json", ".pipeline.json")


def capture_bytes(spool: str | os.PathLike[str], files: list[CaptureFile]) -> int:
    """Disk space the captures and Sluice's own files take: closed files, the .part files being
    written (their preallocated blocks included), the catalog and its index, journal, status."""
    total = sum(allocated(f.path) for f in files)
    for root, dirs, names in os.walk(spool):
        dirs[:] = [d for d in dirs if d != "lost+found" and d != HOLD_DIR]
        parts = Path(root).relative_to(spool).parts
        own_dir = bool(parts) and (parts[0] in OWN_DIRS or parts[0].startswith(OWN_DIR_PREFIXES))
        top = Path(root) == Path(spool)
        for name in names:
            if own_dir or (top and name.startswith(OWN_FILE_PREFIXES)) or \
                    (name.endswith(PART_SUFFIX) and is_capture_file(name.lstrip(".")[: -len(PART_SUFFIX)])):
                total += allocated(os.path.join(root, name))
    return total


def used_bytes(spool: str | os.PathLike[str]) -> int:
    st = os.statvfs(spool)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def enforce(spool: str | os.PathLike[str], floor: FreeFloor, margin: FreeFloor, journal: Journal | None,
            min_age: float = 0.0, now: float | None = None, headroom: int = 0,
            require_backup: bool = False) -> RetentionResult:
    free, size, _inodes, read_only = statvfs(spool)
    result = RetentionResult()
    if read_only or free >= floor.bytes_for(size) + capped_headroom(headroom, size):
        return result
    files = capture_files(spool)
    result.other_bytes = max(used_bytes(spool) - capture_bytes(spool, files), 0)
    if result.other_bytes >= OTHER_FILES_SHARE * (size - floor.bytes_for(size)):
        result.blocked = True
        result.short_bytes = max(floor.bytes_for(size) - free, 0)
        return result
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
        catalog_forget(spool, f.path)  # its row goes too (on the catalog's thread in the supervisor)
        result.deleted.append(f)
        result.freed_bytes += f.size
        if journal is not None:
            journal.append("retention_delete", path=str(f.path), bytes=f.size,
                           age_seconds=round(now - f.mtime, 3), free_bytes=free,
                           floor_bytes=floor.bytes_for(size), headroom_bytes=capped_headroom(headroom, size))
    if result.short_bytes and journal is not None:
        journal.append("retention_short", missing_bytes=result.short_bytes, floor_bytes=floor.bytes_for(size))
    if result.waiting_for_backup_files and journal is not None:
        journal.append("retention_waiting_for_backup", files=result.waiting_for_backup_files,
                       bytes=result.waiting_for_backup_bytes, missing_bytes=result.short_bytes)
    return result
