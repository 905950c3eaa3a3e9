"""Disk watchdog: free bytes and inodes of the spool, how fast it fills, when it will be full,
whether it went read-only; plus what the spool holds (closed capture files, the oldest one).

The fill rate is how fast free space shrinks, with the bytes retention freed added back, so
deleting old files does not look like the disk "unfilling". It is smoothed (EWMA) over checks.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

# Closed capture files; a file still being written ends in .part and is never listed.
CAPTURE_SUFFIXES = (".pcapng", ".pcap", ".pcapng.zst", ".pcap.zst")


@dataclass
class DiskReading:
    path: str
    free_bytes: int
    size_bytes: int
    free_inodes: int
    read_only: bool
    write_bytes_per_second: float
    full_eta_seconds: float  # +inf when not filling


@dataclass
class CaptureFile:
    path: Path
    size: int
    mtime: float


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_options(path: str | os.PathLike[str], mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    """The per-mount and superblock options of the filesystem holding path (empty if unknown)."""
    target = os.path.realpath(path)
    best, options = "", set()
    try:
        with open(mountinfo) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rfields = left.split(), right.split()
                if len(fields) < 6 or len(rfields) < 3:
                    continue
                point = _unescape(fields[4])
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, options = point, set(fields[5].split(",")) | set(rfields[2].split(","))
    except OSError:
        return set()
    return options


def is_read_only(path: str | os.PathLike[str], st: os.statvfs_result | None = None) -> bool:
    """Read-only as statvfs says, or as the mount table says: since Linux 6.x an ext4 that hit
    an error with errors=remount-ro is flagged `emergency_ro` and statvfs still says writable."""
    st = os.statvfs(path) if st is None else st
    if st.f_flag & os.ST_RDONLY:
        return True
    return bool(mount_options(path) & {"ro", "emergency_ro"})


def statvfs(path: str | os.PathLike[str]) -> tuple[int, int, int, bool]:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, st.f_favail, is_read_only(path, st)


class FillRate:
    """Smoothed rate at which free space shrinks (bytes/s)."""

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha
        self.rate = 0.0
        self._last: tuple[float, int] | None = None

    def update(self, now: float, free: int, freed_by_retention: int = 0) -> float:
        if self._last is not None:
            t0, free0 = self._last
            dt = now - t0
            if dt > 0:
                used = (free0 - free) + freed_by_retention
                sample = max(used / dt, 0.0)
                self.rate = sample if self.rate == 0.0 else self.alpha * sample + (1 - self.alpha) * self.rate
        self._last = (now, free)
        return self.rate


def full_eta(free: int, rate: float) -> float:
    return free / rate if rate > 1.0 else math.inf


def read(path: str | os.PathLike[str], rate: FillRate, freed_by_retention: int = 0,
         now: float | None = None) -> DiskReading:
    free, size, inodes, ro = statvfs(path)
    r = rate.update(time.monotonic() if now is None else now, free, freed_by_retention)
    return DiskReading(str(path), free, size, inodes, ro, r, full_eta(free, r))


def is_capture_file(name: str) -> bool:
    return not name.startswith(".") and name.endswith(CAPTURE_SUFFIXES)


def capture_files(spool: str | os.PathLike[str]) -> list[CaptureFile]:
    """Every closed capture file under the spool, oldest first (by mtime, then name)."""
    found: list[CaptureFile] = []
    for root, dirs, files in os.walk(spool):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "lost+found"]
        for name in files:
            if not is_capture_file(name):
                continue
            p = Path(root) / name
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            found.append(CaptureFile(p, st.st_size, st.st_mtime))
    found.sort(key=lambda f: (f.mtime, f.path.name))
    return found
