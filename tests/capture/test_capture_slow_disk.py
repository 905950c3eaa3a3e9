"""A disk slower than the traffic (a loop-mounted ext4 throttled to 2 MB/s by the blkio cgroup):
the staging buffers fill, packets are dropped and counted as writer drops, never silently, the
capture threads do not stall (no kernel drops), and every file stays whole."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness import trafgen
from appliance.lab.harness.mounts import loop_fs
from appliance.lab.harness.writer import Writer
from tests.capture.capfiles import read_capture
from tests.capture.conftest import closed_files
from tests.conftest import require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

BLKIO = Path("/sys/fs/cgroup/blkio")


def test_slow_disk_drops_are_counted_and_files_stay_whole(link, capture_binary, tmp_path: Path) -> None:
    require_tool("trafgen")
    if not (BLKIO / "blkio.throttle.write_bps_device").exists():
        pytest.skip("no blkio cgroup (v1) throttle on this kernel")
    cgroup = BLKIO / f"sluice-test-{uuid.uuid4().hex[:8]}"
    with loop_fs(tmp_path / "slow.img", tmp_path / "disk", "64M") as disk:
        try:
            source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(disk)], capture_output=True, text=True,
                                    check=True).stdout.strip()
            st = os.stat(source)
            cgroup.mkdir()
            (cgroup / "blkio.throttle.write_bps_device").write_text(
                f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)} 2097152\n")
            argv = netns.exec_argv(link.cap, [str(capture_binary), "-i", link.rx, "-w", str(disk), "--buffer-mb", "2",
                                              "--rotate-size", "4M", "--stats-interval", "0.2"])
            w = Writer(["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *argv])
            w.wait_ready()
            trafgen.run(link.h, link.tx, trafgen.udp_conf(tmp_path, 1442), count=20000, gap_us=50, timeout=120)
            w.wait_for(lambda d: d["type"] == "stats" and d["buffer_fill"] >= 0.5)
            assert w.stop(timeout=60) == 0, w.stderr_text()
            final = w.final()
            files = closed_files(disk)
            in_files = sum(len(read_capture(f).packets) for f in files)  # each file parses whole
            assert not list(disk.rglob("*.part"))
            assert final["writer_drops"] > 1000 and final["kernel_drops"] == 0
            assert final["packets"] == in_files + final["writer_drops"]
        finally:
            if cgroup.exists():
                cgroup.rmdir()
