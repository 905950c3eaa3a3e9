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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from appliance.watchdogs import Context, Family, Sample, Watchdog, register

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
    spool_files: int = 0  # closed capture files in the spool
    oldest_file_age_seconds: float | None = None  # None: no capture file
    oldest_file_timestamp: float | None = None  # its mtime (Unix time); None: no capture file
    floor_bytes: int = 0  # the retention floor on this filesystem


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


@register
class DiskWatchdog(Watchdog[DiskReading]):
    """Free space, inodes, fill rate and read-only state of the spool, and the files it holds."""

    name = "disk"
    reading_type = DiskReading
    families = (
        Family("sluice_disk_free_bytes", "gauge", "bytes free to unprivileged writers on the spool filesystem",
               ("path",)),
        Family("sluice_disk_size_bytes", "gauge", "size of the spool filesystem", ("path",)),
        Family("sluice_disk_free_inodes", "gauge", "free inodes", ("path",)),
        Family("sluice_disk_write_bytes_per_second", "gauge", "rate at which free space shrinks", ("path",)),
        Family("sluice_disk_full_eta_seconds", "gauge", "seconds until full at that rate", ("path",)),
        Family("sluice_disk_read_only", "gauge", "1 when the spool filesystem is read-only", ("path",)),
        Family("sluice_spool_files", "gauge", "closed capture files in the spool", ("path",)),
        Family("sluice_spool_oldest_file_timestamp_seconds", "gauge",
               "Unix time of the oldest capture file kept (0: none)",
               ("path",)),
    )

    def __init__(self, cfg: Config) -> None:
        self.rate = FillRate()
        self.files: list[CaptureFile] = []  # the last scan, oldest first (the writers' newest file)
        self._read_only: bool | None = None
        super().__init__(cfg)

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval)

    def check(self, ctx: Context) -> DiskReading:
        spool = ctx.cfg.spool
        reading = read(spool, self.rate, ctx.retention_freed_bytes, ctx.monotonic)
        self.files = capture_files(spool)
        now = time.time()
        reading.spool_files = len(self.files)
        reading.oldest_file_age_seconds = round(now - self.files[0].mtime, 3) if self.files else None
        reading.oldest_file_timestamp = self.files[0].mtime if self.files else None
        reading.floor_bytes = ctx.cfg.retention.min_free.bytes_for(reading.size_bytes)
        if self._read_only is not None and self._read_only != reading.read_only and ctx.journal is not None:
            ctx.journal.append("disk_read_only" if reading.read_only else "disk_writable", path=reading.path)
        self._read_only = reading.read_only
        return reading

    @classmethod
    def samples(cls, reading: DiskReading) -> Iterable[Sample]:
        path = (reading.path,)
        oldest = reading.oldest_file_timestamp
        for family, value in (
                ("sluice_disk_free_bytes", reading.free_bytes), ("sluice_disk_size_bytes", reading.size_bytes),
                ("sluice_disk_free_inodes", reading.free_inodes),
                ("sluice_disk_write_bytes_per_second", reading.write_bytes_per_second),
                ("sluice_disk_full_eta_seconds", reading.full_eta_seconds),
                ("sluice_disk_read_only", reading.read_only), ("sluice_spool_files", reading.spool_files),
                ("sluice_spool_oldest_file_timestamp_seconds", 0.0 if oldest is None else oldest)):
            yield Sample(family, path, float(value))

    @classmethod
    def describe(cls, reading: DiskReading) -> list[str]:
        eta = reading.full_eta_seconds
        oldest = reading.oldest_file_age_seconds
        return [
            f"disk: {reading.path} free {human_bytes(reading.free_bytes)} of {human_bytes(reading.size_bytes)} "
            f"(floor {human_bytes(reading.floor_bytes)}), {reading.free_inodes} inodes, "
            f"filling {human_bytes(reading.write_bytes_per_second)}/s, full in "
            f"{human_seconds(eta) if math.isfinite(eta) else 'never'}"
            + (", READ-ONLY" if reading.read_only else ""),
            f"spool: {reading.spool_files} closed files"
            + (f", the oldest {human_seconds(oldest)} old" if oldest is not None else ""),
        ]
