"""A full disk mid-run: the current file is closed at its last whole record, disk_error is
reported, packets count as writer drops, and writing resumes by itself once space is freed."""

from __future__ import annotations

import hashlib
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from appliance.lab.harness import mounts
from appliance.lab.harness.trafgen import Trafgen, udp_conf
from tests.capture.capfiles import read_capture
from tests.capture.conftest import closed_files, start_writer
from tests.conftest import require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]


def mount_small(kind: str, where: Path, tmp_path: Path) -> AbstractContextManager[Path]:
    if kind == "tmpfs":
        return mounts.tmpfs(where, "6M")
    return mounts.loop_fs(tmp_path / "ext4.img", where, "16M")  # O_DIRECT through io_uring


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
def test_enospc_closes_cleanly_and_resumes(link, capture_binary, tmp_path: Path, kind: str) -> None:
    require_tool("trafgen")
    disk = tmp_path / "disk"
    with mount_small(kind, disk, tmp_path):
        w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(disk), "--rotate-size", "1M",
                                                    "--buffer-mb", "4", "--host", "full"])
        w.wait_ready()
        with Trafgen(link.h, link.tx, udp_conf(tmp_path, 1200), count=200000, gap_us=50):
            w.wait_for(lambda d: d["type"] == "stats" and d["disk_error"] == "ENOSPC", timeout=60)
            # the file closed at the failure is renamed and reported around this line, before or after
            # it (two threads): half a second for both, as no one event marks the pair
            time.sleep(0.5)
            snapshot = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in closed_files(disk)}
            assert snapshot, "files closed before and at the failure"
            for f in snapshot:
                assert read_capture(f).packets, f"{f.name} is not whole"
            # free space the way retention does: delete the oldest closed files
            oldest = sorted(snapshot)[: max(2, len(snapshot) // 2)]
            stuck = [d for d in w.lines if d["type"] == "stats"][-1]
            for f in oldest:
                f.unlink()
            # The flood refills the freed space within a second, so a stats line may never catch the
            # writer between two disk errors: that it resumed shows in bytes written and files closed.
            resumed = w.wait_for(lambda d: d["type"] == "stats" and d["bytes_written"] > stuck["bytes_written"]
                                 and d["files_closed"] > stuck["files_closed"], timeout=20)
            assert resumed["writer_drops"] > 0
        time.sleep(1.2)  # deliberate: past the writer's next try of a new file (every 0.1 s: native/README.md)
        assert w.stop() == 0, w.stderr_text()
        final = w.final()
        assert final["errors"] >= 1 and final["writer_drops"] > 0
        for f, digest in snapshot.items():
            if f.exists():
                assert hashlib.sha256(f.read_bytes()).hexdigest() == digest, f"{f.name} damaged"
        files = closed_files(disk)
        assert not list(disk.rglob("*.part"))
        new = [f for f in files if f not in snapshot]
        assert new, "writing resumed into new files"
        for f in files:
            read_capture(f)  # every file parses whole
        assert "No space left on device" in w.stderr_text()
