"""Filesystems of a given size for a spool: tmpfs, or a real one on a loop device."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def _run(argv: Sequence[str]) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout.strip()


def remount(path: Path, options: str) -> None:
    """`mount -o remount,OPTIONS PATH`: e.g. "size=64M" (a full tmpfs gets room) or "ro"."""
    _run(["mount", "-o", f"remount,{options}", str(path)])


def umount(path: Path) -> None:
    """Lazy unmount: a process still holding a file there does not keep the test from cleaning up."""
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextmanager
def tmpfs(path: Path, size: str, options: str = "", source: str = "sluice-test") -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: "6M", "8m") at path, with extra mount options
    ("ro", "nr_inodes=1000"); unmounted on the way out."""
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (f",{options}" if options else ""), source, str(path)])
    try:
        yield path
    finally:
        umount(path)


@contextmanager
def ramfs(path: Path, source: str = "sluice-test") -> Iterator[Path]:
    """A ramfs at path (no size limit, and no O_DIRECT: unlike tmpfs), unmounted on the way out."""
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "ramfs", source, str(path)])
    try:
        yield path
    finally:
        umount(path)


@contextmanager
def loop_fs(image: Path, mnt: Path, size: str, fstype: str = "ext4", mkfs: Sequence[str] = ("-q", "-F"),
            options: str = "", direct_io: bool = False) -> Iterator[Path]:
    """A `fstype` filesystem in a sparse file of `size` on a loop device of its own, mounted at mnt
    (mount OPTIONS when given; the loop device with direct I/O when asked, so O_DIRECT writes reach
    the disk as on a real spool); unmounted, the loop device freed and the image removed on the way out."""
    image.unlink(missing_ok=True)
    _run(["truncate", "-s", size, str(image)])
    device = ""
    try:
        _run([f"mkfs.{fstype}", *mkfs, str(image)])
        device = _run(["losetup", "--find", "--show", *(["--direct-io=on"] if direct_io else []), str(image)])
        mnt.mkdir(parents=True, exist_ok=True)
        _run(["mount", *(["-o", options] if options else []), device, str(mnt)])
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=False, capture_output=True)
            if subprocess.run(["mountpoint", "-q", str(mnt)]).returncode == 0:
                umount(mnt)
    finally:
        if device:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        image.unlink(missing_ok=True)
