"""The catalog on a full spool: a write fails with an error, never a SIGBUS that kills the process.

SQLite's WAL index is memory-mapped; on an ext4 with 1 KiB blocks (mkfs's choice for small
volumes) a full disk left a page of it without blocks, and touching it killed the supervisor
(issue 11's flood test). The catalog keeps WAL only where blocks are a page or bigger."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import catalog
from appliance.lab.harness.mounts import loop_fs
from tests.conftest import REPO, require_tool

pytestmark = [pytest.mark.root]

WRITE_A_ROW = """
import sys
from appliance import catalog
db = catalog.connect(sys.argv[1])
with db:
    db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", ("x" * 200_000,))
print(db.execute("PRAGMA journal_mode").fetchone()[0])
"""


@pytest.fixture(params=[1024, 4096], ids=["1k-blocks", "4k-blocks"])
def full_spool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A 20 MiB ext4 with the given block size, loop-mounted, its catalog made, then filled."""
    block = request.param
    require_tool("mkfs.ext4")
    mkfs = ("-q", "-F", "-m", "0", "-b", str(block))
    with loop_fs(tmp_path / "spool.img", tmp_path / "spool", str(20 << 20), mkfs=mkfs) as mnt:
        catalog.connect(mnt).close()
        with open(mnt / "someones.iso", "wb") as f:
            try:
                while True:
                    f.write(b"\x5a" * 65536)
                    f.flush()
            except OSError:
                pass
        yield mnt, block


def test_a_catalog_write_on_a_full_spool_fails_cleanly(full_spool: tuple[Path, int]) -> None:
    spool, block = full_spool
    assert os.statvfs(spool).f_bavail * os.statvfs(spool).f_frsize < 64 << 10, "the spool is not full"
    proc = subprocess.run([sys.executable, "-c", WRITE_A_ROW, str(spool)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr}"
    if proc.returncode != 0:  # "database or disk is full", or "disk I/O error" for the WAL index
        assert proc.stderr.splitlines()[-1].startswith("sqlite3.OperationalError"), proc.stderr
    expected = "wal" if block >= mmap.PAGESIZE else "delete"
    assert catalog.journal_mode(spool).lower() == expected
    # the catalog is still a good database: what was committed before is there
    os.unlink(spool / "someones.iso")
    db = catalog.connect(spool, readonly=True)
    try:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == expected
    finally:
        db.close()
