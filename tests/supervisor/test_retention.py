"""Retention on a real, small filesystem: just enough of the oldest files go, never .part."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import parse_floor
from appliance.journal import Journal, read_events
from appliance.lab.harness.mounts import tmpfs
from appliance.retention import enforce, plan
from appliance.watchdogs.disk import CaptureFile, statvfs

MiB = 1024 * 1024


def test_plan_takes_oldest_until_floor_plus_margin() -> None:
    files = [CaptureFile(Path(f"f{i}.pcapng"), 10 * MiB, 1000.0 + i) for i in range(10)]
    size = 1000 * MiB
    chosen, short = plan(files, free=95 * MiB, fs_size=size, floor=parse_floor("10%"), margin=parse_floor("1%"),
                         now=2000.0)
    # 100 MiB floor + 10 MiB margin - 95 MiB free = 15 MiB: two 10 MiB files, the two oldest.
    assert [f.path.name for f in chosen] == ["f0.pcapng", "f1.pcapng"] and short == 0
    assert plan(files, free=100 * MiB, fs_size=size, floor=parse_floor("10%"), margin=parse_floor("1%"),
                now=2000.0) == ([], 0)
    young, short = plan(files, free=0, fs_size=size, floor=parse_floor("10%"), margin=parse_floor("1%"),
                        now=1005.5, min_age=1.0)
    assert [f.path.name for f in young] == [f"f{i}.pcapng" for i in range(5)]
    assert short == 50 * MiB
    held, _ = plan(files, free=95 * MiB, fs_size=size, floor=parse_floor("10%"), margin=parse_floor("1%"),
                   now=2000.0, held={"f0.pcapng"})
    assert [f.path.name for f in held] == ["f1.pcapng", "f2.pcapng"]  # the held one skipped, not counted


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "spool", "32m", source="tmpfs") as mnt:
        yield mnt


@pytest.mark.root
def test_enforce_on_a_full_tmpfs(tiny_fs: Path) -> None:
    day = tiny_fs / "box" / "2026-11-26"
    day.mkdir(parents=True)
    paths = []
    for i in range(12):
        p = day / f"box_c0_20261126T0000{i:02d}.000000000Z_{i + 1:06d}.pcapng"
        p.write_bytes(os.urandom(2 * MiB))
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))
        paths.append(p)
    part = day / "box_c0_20261126T001200.000000000Z_000013.pcapng.part"
    part.write_bytes(os.urandom(4 * MiB))
    os.utime(part, (1_600_000_000, 1_600_000_000))  # the oldest mtime of all: still never deleted
    (tiny_fs / ".hold").mkdir()
    (tiny_fs / ".hold" / paths[1].name).symlink_to(paths[1])  # the pipeline still needs the 2nd oldest
    free, size, _, _ = statvfs(tiny_fs)
    floor = parse_floor("40%")
    assert free < floor.bytes_for(size)
    with Journal(tiny_fs / "journal.jsonl") as journal:
        result = enforce(tiny_fs, floor, parse_floor("1%"), journal)
    free_after, _, _, _ = statvfs(tiny_fs)
    assert free_after >= floor.bytes_for(size)
    # Just enough: without the newest deleted file we would be under floor + margin.
    assert free_after - result.deleted[-1].size < floor.bytes_for(size) + parse_floor("1%").bytes_for(size)
    deleted = [f.path for f in result.deleted]
    unheld = [paths[0], *paths[2:]]
    assert deleted == unheld[: len(deleted)]  # oldest first, in order, the held one skipped
    assert paths[1].exists() and all(p.exists() for p in unheld[len(deleted):]) and part.exists()
    events = list(read_events(tiny_fs / "journal.jsonl", "retention_delete"))
    assert [e["path"] for e in events] == [str(p) for p in deleted]
    assert result.freed_bytes == len(deleted) * 2 * MiB


@pytest.mark.root
def test_journal_on_a_full_filesystem_loses_lines_not_the_caller(tiny_fs: Path) -> None:
    journal = Journal(tiny_fs / "journal.jsonl")
    journal.append("before")
    filler = tiny_fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * MiB)
                f.flush()
        except OSError:
            pass
    with open(tiny_fs / "journal.jsonl", "ab", buffering=0) as f:  # top up the last block: no line fits
        try:
            while True:
                f.write(b" ")
                f.flush()
        except OSError:
            pass
    journal.append("lost", n=1)  # ENOSPC: logged, not raised
    filler.unlink()
    journal.append("after")
    journal.close()
    assert [e["event"] for e in read_events(tiny_fs / "journal.jsonl")] == ["before", "after"]


def test_a_flood_rate_cannot_raise_the_floor_past_a_tenth_of_the_disk() -> None:
    """210 MB/s x 2 s x 2 of headroom on a 200 MiB spool used to ask for more than the disk."""
    files = [CaptureFile(Path(f"box_c0_2026112{i:02d}T000000.000000000Z_{i:06d}.pcapng"), 4 * MiB, 1000.0 + i)
             for i in range(20)]
    size = 200 * MiB
    chosen, short = plan(files, free=150 * MiB, fs_size=size, floor=parse_floor("10%"), margin=parse_floor("1%"),
                         now=2000.0, headroom=840_000_000)
    assert chosen == [] and short == 0  # 75 % free is above floor (20 MiB) + capped headroom (20 MiB)
    chosen, short = plan(files, free=30 * MiB, fs_size=size, floor=parse_floor("10%"), margin=parse_floor("1%"),
                         now=2000.0, headroom=840_000_000)
    # 20 + 20 + 2 MiB wanted, 30 free: 12 MiB, three files of the oldest; the newest 17 stay.
    assert [f.path for f in chosen] == [f.path for f in files[:3]] and short == 0


def test_the_newest_file_of_each_writer_is_never_deleted() -> None:
    files = sorted([CaptureFile(Path(f"box_{i}_20261126T0000{n:02d}.000000000Z_{n:06d}.pcapng"), MiB,
                                1000.0 + n * 2 + (i == "c1"))
                    for i in ("c0", "c1") for n in range(3)], key=lambda f: f.mtime)
    chosen, short = plan(files, free=0, fs_size=100 * MiB, floor=parse_floor("50%"), margin=parse_floor("1%"),
                         now=2000.0)
    kept = {f.path.name for f in files} - {f.path.name for f in chosen}
    assert kept == {"box_c0_20261126T000002.000000000Z_000002.pcapng",
                    "box_c1_20261126T000002.000000000Z_000002.pcapng"}
    assert short > 0  # the floor is out of reach: said, not met by deleting the last files
    # An interface name with '_' is still one writer.
    one = [CaptureFile(Path(f"box_c_0_20261126T0000{n:02d}.000000000Z_{n:06d}.pcapng"), MiB, 1000.0 + n)
           for n in range(3)]
    chosen, _ = plan(one, free=0, fs_size=100 * MiB, floor=parse_floor("50%"), margin=parse_floor("1%"), now=2000.0)
    assert [f.path for f in chosen] == [one[0].path, one[1].path]


@pytest.mark.root
def test_a_spool_full_of_other_files_deletes_no_capture(tiny_fs: Path) -> None:
    """The only capture is not destroyed to make room for someone's ISO image: blocked, said."""
    day = tiny_fs / "box" / "2026-11-26"
    day.mkdir(parents=True)
    captures = []
    for n in range(2):
        p = day / f"box_c0_20261126T00000{n}.000000000Z_00000{n}.pcapng"
        p.write_bytes(os.urandom(MiB))
        os.utime(p, (1_700_000_000 + n, 1_700_000_000 + n))
        captures.append(p)
    # 29 of 32 MiB: beyond the 90 % that the 10 % floor leaves, whatever the captures do.
    (tiny_fs / "someones.iso").write_bytes(os.urandom(29 * MiB))
    free, size, _, _ = statvfs(tiny_fs)
    floor = parse_floor("10%")
    assert free < floor.bytes_for(size)
    with Journal(tiny_fs / "journal.jsonl") as journal:
        result = enforce(tiny_fs, floor, parse_floor("1%"), journal)
    assert result.blocked and result.deleted == [] and all(p.exists() for p in captures)
    assert result.other_bytes >= 29 * MiB
    # Once the other file is gone, captures count again: a capture flood is trimmed as before.
    (tiny_fs / "someones.iso").unlink()
    filler = [day / f"box_c0_20261126T0001{n:02d}.000000000Z_0001{n:02d}.pcapng" for n in range(14)]
    for n, p in enumerate(filler):
        p.write_bytes(os.urandom(2 * MiB))
        os.utime(p, (1_700_000_100 + n, 1_700_000_100 + n))
    with Journal(tiny_fs / "journal.jsonl") as journal:
        result = enforce(tiny_fs, floor, parse_floor("1%"), journal)
    assert not result.blocked and result.deleted and result.deleted[0].path == captures[0]
