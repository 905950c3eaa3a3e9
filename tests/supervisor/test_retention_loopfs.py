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
from appliance.lab.harness.mounts import loop_fs, remount
from tests.conftest import SLUICE_CAPTURE, require_tool
from tests.supervisor.running import Supervise, capture_files, sample, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

MiB = 1024 * 1024
ROTATE = 4 * MiB


@pytest.fixture
def loop_ext4(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB ext4 filesystem in a file, loop-mounted; unmounted (loop freed) whatever happens."""
    require_tool("mkfs.ext4")
    with loop_fs(tmp_path / "spool.img", tmp_path / "spool", "128M", mkfs=("-q", "-F", "-m", "0")) as mnt:
        yield mnt


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
    remount(spool, "errors=remount-ro")
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


@pytest.fixture
def loop_ext4_200m(tmp_path: Path) -> Iterator[Path]:
    """A 200 MiB ext4 in a file, loop-mounted: the spool of the flood reported in issue 11."""
    require_tool("mkfs.ext4")
    with loop_fs(tmp_path / "spool200.img", tmp_path / "spool200", "200M", mkfs=("-q", "-F", "-m", "0")) as mnt:
        yield mnt


def test_a_flood_keeps_the_newest_files_and_deletes_only_for_the_floor(lab, loop_ext4_200m: Path,  # noqa: ANN001
                                                                       tmp_path: Path) -> None:
    """trafgen at full speed into a 200 MiB spool with the default retention settings: deletions
    happen only near the floor (never with most of the disk free), oldest first, and every
    flood leaves closed files behind, the newest among them."""
    from appliance.lab import traffic

    require_tool("trafgen")
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    spool = loop_ext4_200m
    path = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra="[nic]\ntune = false\n")
    path.write_text(path.read_text().replace('host = "lab"', 'host = "lab"\nrotate_size = "8M"'))
    st = os.statvfs(spool)
    size = st.f_blocks * st.f_frsize
    floor = parse_floor("10%").bytes_for(size)
    free_at_start = st.f_bavail * st.f_frsize
    with Supervise(lab.capture_ns, path, spool) as sup:
        for flood_no in range(2):
            # 250 000 x 1442 B, mirrored in and out of the bridge: well over the disk's size.
            traffic.flood(lab, "h1", "h2", count=250_000, size=1442, cpu=0)
            state = sup.wait_for(lambda s: s["writers"][0]["buffer_fill"] < 0.01, 20, "the flood written")
            kept = capture_files(spool)
            closed = [p for p in kept if not p.name.endswith(".part")]
            assert closed, f"flood {flood_no + 1} left no closed file: {kept}"
        assert sup.stop() == 0
    deletions = list(read_events(spool / "journal.jsonl", "retention_delete"))
    assert deletions, "the floods never filled the disk: nothing tested"
    # More was written than fitted above the floor. (Not more than the disk: trafgen at full speed
    # outruns the writer on a 2-core box and ext4's metadata makes the disk smaller than f_blocks.)
    assert state["writers"][0]["totals"]["bytes_written"] > free_at_start - floor
    for e in deletions:
        # The raised floor stays a sane share of the disk: never a deletion with 20 % free.
        assert e["headroom_bytes"] <= 0.10 * size + 1, e
        assert e["free_bytes"] < floor + 0.10 * size, (e, size)
    kept = sorted(p.name for p in capture_files(spool) if not p.name.endswith(".part"))
    deleted = sorted(Path(e["path"]).name for e in deletions)
    assert kept and max(deleted) < min(kept), "a newer file went while an older one stayed"
    newest_written = max(Path(e["path"]).name for e in read_events(spool / "journal.jsonl", "file_closed"))
    assert newest_written in kept


def test_the_issues_flood_rate_never_fills_the_spool(lab, loop_ext4_200m: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """The flood of issue 11 (210 MB/s captured, into a 200 MiB spool, default retention): the
    disk filled and packets were dropped. Retention now checks the free space whenever a file
    closes, not only every 2 s: the writer never meets a full disk and writes every packet."""
    from appliance.lab import traffic

    require_tool("trafgen")
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    spool = loop_ext4_200m
    path = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra="[nic]\ntune = false\n")
    # the capture's defaults (ring and buffers sized from the memory), not the tests' small ones
    text = path.read_text().replace("ring_mb = 8\nbuffer_mb = 16\n", "")
    path.write_text(text.replace('host = "lab"', 'host = "lab"\nrotate_size = "8M"'))
    with Supervise(lab.capture_ns, path, spool) as sup:
        # 150 000 x 1442 B at 105 MB/s, seen twice on the SPAN port: about 430 MB in 2 s.
        traffic.flood(lab, "h1", "h2", count=150_000, size=1442, cpu=0, rate="105MB")
        state = sup.wait_for(lambda s: s["writers"][0]["buffer_fill"] < 0.01 and
                             s["writers"][0]["totals"]["packets"] + s["writers"][0]["totals"]["kernel_drops"]
                             >= 300_000, 20, "the flood written")
        assert sup.stop() == 0
    totals = state["writers"][0]["totals"]
    assert not list(read_events(spool / "journal.jsonl", "disk_error")), "the writer met a full disk"
    assert list(read_events(spool / "journal.jsonl", "retention_delete")), "the flood never filled the disk"
    assert totals["writer_drops"] == 0 and totals["kernel_drops"] == 0, totals
    assert totals["bytes_written"] > os.statvfs(spool).f_blocks * os.statvfs(spool).f_frsize


def test_retention_blocked_by_other_files_and_a_truthful_status_on_a_full_then_read_only_spool(
        lab, loop_ext4: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """Someone fills the spool with an ISO image: no capture is deleted for it, and the journal,
    /metrics and `sluice status` say so. Filled to the last byte, status.json is still
    rewritten; read-only, `sluice status` says the supervisor runs but cannot write it."""
    import sys

    from tests.conftest import REPO

    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    spool = loop_ext4
    remount(spool, "errors=remount-ro")
    device = subprocess.run(["findmnt", "-no", "SOURCE", str(spool)], capture_output=True, text=True,
                            check=True).stdout.strip()
    path = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra=(
        "[nic]\ntune = false\n[retention]\ninterval = 0.25\n"))
    path.write_text(path.read_text().replace('host = "lab"', 'host = "lab"\nrotate_size = "1M"'))

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--config", str(path)],
                              capture_output=True, text=True, cwd=REPO, timeout=30)

    with Supervise(lab.capture_ns, path, spool) as sup:
        lab.exec(lab.host("h2").ns, ["iperf3", "-c", lab.host("h1").ipv4, "-t", "1", "-b", "20M"], timeout=30)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["files_closed"] >= 2, 20, "closed files")
        captures = [p for p in capture_files(spool) if not p.name.endswith(".part")]
        iso = spool / "someones.iso"
        free = os.statvfs(spool).f_bavail * os.statvfs(spool).f_frsize
        # All but 8 MiB of what is free (the writer goes on writing meanwhile): under the 10 % floor.
        fd = os.open(iso, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for _ in range((free - 8 * MiB) // MiB):
                os.write(fd, b"\x5a" * MiB)
        except OSError:
            pass
        finally:
            os.close(fd)
        size = iso.stat().st_size
        sup.wait_for(lambda s: s["retention"]["blocked"] and s["retention"]["other_bytes"] >= size, 10,
                     "retention blocked by the whole ISO image")
        assert all(p.exists() for p in captures), "a capture was deleted to make room for other files"
        assert list(read_events(spool / "journal.jsonl", "retention_blocked"))
        assert sample(sup.metrics(), "sluice_retention_blocked") == 1
        out = status()
        assert "RETENTION BLOCKED" in out.stdout and out.returncode == 0, out
        # The last byte gone: status.json is rewritten in place, the status stays fresh.
        fd = os.open(iso, os.O_WRONLY | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\x5a" * 1024)
        except OSError:
            pass
        finally:
            os.close(fd)
        st = os.statvfs(spool)
        assert st.f_bavail * st.f_frsize < 64 * 1024  # a new status.json (16 KiB, padded) may not fit
        before = sup.state()["ts"]
        sup.wait_for(lambda s: s["ts"] > before + 1, 10, "status.json rewritten on a full disk")
        out = status()
        assert out.returncode == 0 and "WARNING" not in out.stdout, out
        # Space again: retention resumes (and says so).
        iso.unlink()
        sup.wait_for(lambda s: not s["retention"]["blocked"], 10, "retention unblocked")
        assert list(read_events(spool / "journal.jsonl", "retention_unblocked"))
        # Read-only (the kernel's own ext4 error trigger): the status ages, and says the
        # supervisor runs but cannot rewrite it.
        Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("sluice test\n")
        ts = sup.state()["ts"]
        # deliberate: the status must age (`sluice status` is a process of its own: no clock to move)
        time.sleep(max(0.0, ts + 10.5 - time.time()))
        out = status()
        assert out.returncode == 1, out
        assert sup.proc is not None
        assert f"the supervisor (pid {sup.proc.pid}) runs but cannot rewrite" in out.stdout, out.stdout
        assert sup.stop() == 0
    assert "Traceback" not in sup.stderr()
