"""Retention on a small loop-mounted ext4 filled by a real capture of real iperf3 traffic."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import parse_floor
from appliance.journal import read_events
from tests.conftest import SLUICE_CAPTURE, require_tool
from tests.supervisor.running import Supervise, capture_files, sample, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

MiB = 1024 * 1024
ROTATE = 4 * MiB


@pytest.fixture
def loop_ext4(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB ext4 filesystem in a file, loop-mounted; unmounted (loop freed) whatever happens."""
    image, mnt = tmp_path / "spool.img", tmp_path / "spool"
    subprocess.run(["dd", "if=/dev/zero", f"of={image}", "bs=1M", "count=128", "status=none"], check=True)
    subprocess.run([require_tool("mkfs.ext4"), "-q", "-F", "-m", "0", str(image)], check=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        image.unlink(missing_ok=True)


def test_floor_holds_oldest_go_no_enospc(lab, loop_ext4: Path, tmp_path: Path) -> None:  # noqa: ANN001
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    spool = loop_ext4
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra=(
        "[nic]\ntune = false\n"
        '[retention]\nmin_free = "30%"\nmargin = "2%"\ninterval = 0.25\n')).read_text()
    cfg = cfg.replace('host = "lab"', f'host = "lab"\nrotate_size = "{ROTATE}"').replace("interval = 1\n",
                                                                                       "interval = 0.5\n")
    (tmp_path / "sluice.toml").write_text(cfg)
    st = os.statvfs(spool)
    floor = parse_floor("30%").bytes_for(st.f_blocks * st.f_frsize)
    lowest = [st.f_bavail * st.f_frsize]
    done = threading.Event()

    def watch_free() -> None:
        while not done.wait(0.05):
            s = os.statvfs(spool)
            lowest[0] = min(lowest[0], s.f_bavail * s.f_frsize)

    watcher = threading.Thread(target=watch_free, daemon=True)
    with Supervise(lab.capture_ns, tmp_path / "sluice.toml", spool) as sup:
        watcher.start()
        # ~2 x 60 Mbit/s on the SPAN port for 12 s: about 180 MB into a 128 MiB filesystem.
        lab.exec(lab.host("h2").ns, ["iperf3", "-c", lab.host("h1").ipv4, "-t", "12", "-b", "60M"], timeout=60)
        state = sup.wait_for(lambda s: s["retention"]["deleted_files_total"] >= 3, 20, "retention deletions")
        metrics = sup.metrics()
        assert sup.stop() == 0
    done.set()
    watcher.join()
    writer = state["writers"][0]
    written = writer["totals"]["bytes_written"]
    assert written > st.f_blocks * st.f_frsize, f"the capture wrote only {written} bytes: the disk never filled"
    deletions = list(read_events(spool / "journal.jsonl", "retention_delete"))
    assert len(deletions) >= 3
    assert sample(metrics, "sluice_retention_deleted_files_total") >= 3
    # The oldest went: every deleted file is older (its name sorts before) every file kept.
    kept = sorted(f.name for f in capture_files(spool))
    deleted = sorted(Path(e["path"]).name for e in deletions)
    assert kept and max(deleted) < min(kept)
    # The floor held, give or take what the writer preallocates for one file.
    assert lowest[0] >= floor - ROTATE, (lowest[0], floor)
    final = os.statvfs(spool)
    assert final.f_bavail * final.f_frsize >= floor - ROTATE
    # The writer never hit ENOSPC: no disk error reported, no write errors counted.
    assert not list(read_events(spool / "journal.jsonl", "disk_error"))
    assert writer["totals"]["errors"] == 0 and writer["disk_error"] is None


def test_spool_filesystem_error_goes_read_only_and_supervision_goes_on(lab, loop_ext4: Path,  # noqa: ANN001
                                                                      tmp_path: Path) -> None:
    """ext4 with errors=remount-ro hits an error (the kernel's own trigger_fs_error): the spool is
    read-only at once. It is reported as such, and the supervisor keeps running and exits 0."""
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    spool = loop_ext4
    subprocess.run(["mount", "-o", "remount,errors=remount-ro", str(spool)], check=True)
    device = subprocess.run(["findmnt", "-no", "SOURCE", str(spool)], capture_output=True, text=True,
                            check=True).stdout.strip()
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra="[nic]\ntune = false\n")
    with Supervise(lab.capture_ns, cfg, spool) as sup:
        before = sup.metrics()
        assert sample(before, "sluice_disk_read_only", path=str(spool)) == 0
        Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("sluice test\n")
        lab.exec(lab.host("h2").ns, ["iperf3", "-c", lab.host("h1").ipv4, "-t", "2", "-b", "50M"], timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # status.json lives on the broken disk: ask /metrics
            metrics = sup.metrics()
            if sample(metrics, "sluice_disk_read_only", path=str(spool)) == 1:
                break
            time.sleep(0.3)
        assert sample(metrics, "sluice_disk_read_only", path=str(spool)) == 1
        assert sup.proc is not None and sup.proc.poll() is None
        assert sup.stop() == 0
    assert "Traceback" not in sup.stderr()
