"""The spool's sustained write rate as the writer writes: aligned 4 MiB blocks through O_DIRECT
(the page cache would flatter the disk), one file, fdatasync at the end, then removed.

A filesystem that refuses O_DIRECT (tmpfs) is measured buffered with the fdatasync, as the
writer falls back there too; the result says which.
"""

from __future__ import annotations

import errno
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

BLOCK = 4 * 1024 * 1024  # the writer's staging block when buffer_mb >= 32


@dataclass
class DiskRate:
    bytes_written: int
    seconds: float
    direct: bool

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_written / self.seconds if self.seconds > 0 else 0.0


def _open(path: Path) -> tuple[int, bool]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_DIRECT, 0o600), True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    return os.open(path, flags, 0o600), False


def measure(directory: Path, seconds: float, max_bytes: int) -> DiskRate:
    """Writes for `seconds` (at most max_bytes, at least one block) and returns the rate."""
    path = directory / "disk-rate.tmp"
    buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(BLOCK))
    fd, direct = _open(path)
    written = 0
    try:
        start = time.monotonic()
        try:
            while written < BLOCK or (time.monotonic() - start < seconds and written + BLOCK <= max_bytes):
                written += os.write(fd, buf)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not direct or written:
                raise
            # Accepted at open, refused at write (some filesystems): measure buffered.
            os.close(fd)
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            direct = False
            start = time.monotonic()
            while written < BLOCK or (time.monotonic() - start < seconds and written + BLOCK <= max_bytes):
                written += os.write(fd, buf)
        os.fdatasync(fd)
        elapsed = time.monotonic() - start
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
        buf.close()
    return DiskRate(written, elapsed, direct)
