"""Watchdogs against the real kernel: adjtimex, statvfs of a sized tmpfs, a veth's sysfs."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.lab.harness.mounts import remount, tmpfs
from appliance.watchdogs import disk, nic
from appliance.watchdogs import time as time_wd


def test_adjtimex_reads_the_kernel_clock() -> None:
    clock = time_wd.read_adjtimex()
    # The kernel always reports a state 0..5 and a non-negative max error (µs -> s).
    assert 0 <= clock.state <= 5
    assert clock.max_error_seconds >= 0
    assert clock.synchronized == (not clock.status & time_wd.STA_UNSYNC and clock.state != time_wd.TIME_ERROR)


def test_step_detector_sees_a_jump_of_realtime_only() -> None:
    real = [1000.0]
    mono = [50.0]
    det = time_wd.StepDetector(0.5, clock_real=lambda: real[0], clock_mono=lambda: mono[0])
    assert det.check() is None
    real[0] += 10
    mono[0] += 10  # both advance together: no step
    assert det.check() is None
    real[0] += 3600.0  # someone set the clock an hour ahead
    mono[0] += 1
    assert det.check() == pytest.approx(3599.0)
    real[0] -= 2.0  # then back
    assert det.check() == pytest.approx(-2.0)
    assert det.steps == 2


def test_fill_rate_counts_retention_deletions_back() -> None:
    rate = disk.FillRate(alpha=1.0)
    rate.update(0.0, 1_000_000)
    assert rate.update(1.0, 900_000) == pytest.approx(100_000)
    # 50 kB written but 200 kB deleted by retention: free grew, the disk still fills at 50 kB/s.
    assert rate.update(2.0, 1_050_000, freed_by_retention=200_000) == pytest.approx(50_000)
    assert disk.full_eta(1_000_000, 50_000) == pytest.approx(20)
    assert math.isinf(disk.full_eta(1_000_000, 0.0))


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "mnt", "8m", "nr_inodes=1000", source="tmpfs") as mnt:
        yield mnt


@pytest.mark.root
def test_disk_reading_of_a_real_filesystem(small_tmpfs: Path) -> None:
    rate = disk.FillRate(alpha=1.0)
    first = disk.read(small_tmpfs, rate, now=0.0)
    assert first.size_bytes == 8 * 1024 * 1024
    assert first.free_inodes <= 1000 and not first.read_only
    (small_tmpfs / "x.pcapng").write_bytes(b"\0" * 2 * 1024 * 1024)
    second = disk.read(small_tmpfs, rate, now=2.0)
    assert first.free_bytes - second.free_bytes >= 2 * 1024 * 1024
    assert second.write_bytes_per_second == pytest.approx((first.free_bytes - second.free_bytes) / 2)
    assert second.full_eta_seconds == pytest.approx(second.free_bytes / second.write_bytes_per_second)
    remount(small_tmpfs, "ro")
    assert disk.read(small_tmpfs, rate, now=3.0).read_only


def test_capture_files_skip_part_and_hidden(tmp_path: Path) -> None:
    day = tmp_path / "box" / "2026-11-26"
    day.mkdir(parents=True)
    names = ["box_c0_20261126T000000.000000000Z_000001.pcapng", "box_c0_20261126T000100.000000000Z_000002.pcapng",
             "box_c0_20261126T000200.000000000Z_000003.pcapng.part", ".hidden.pcapng", "notes.txt"]
    for i, n in enumerate(names):
        p = day / n
        p.write_bytes(b"x" * (i + 1))
        t = 1_700_000_000 + i
        import os
        os.utime(p, (t, t))
    files = disk.capture_files(tmp_path)
    assert [f.path.name for f in files] == names[:2]


def test_span_watch() -> None:
    watch = nic.SpanWatch(dead_after=5)
    assert watch.update("c0", 10, True, 0.0) == (False, 0.0)
    assert watch.update("c0", 10, True, 4.0) == (False, 4.0)
    assert watch.update("c0", 10, True, 6.0) == (True, 6.0)
    assert watch.update("c0", 11, True, 7.0) == (False, 0.0)  # a packet: alive again
    assert watch.update("c0", 11, False, 20.0) == (False, 0.0)  # link down is not "SPAN dead"


NIC_PROBE = """
import json, sys, time
from appliance.watchdogs import nic
w = nic.SpanWatch(dead_after=float(sys.argv[2]))
first = nic.read(sys.argv[1], w)
time.sleep(float(sys.argv[2]) + 0.3)
second = nic.read(sys.argv[1], w)
print(json.dumps([first.__dict__, second.__dict__]))
"""


@pytest.mark.root
@pytest.mark.netns
def test_nic_reading_of_a_veth_in_a_namespace(veth_ns) -> None:  # noqa: ANN001
    # Send a few frames so rx0 has counted something, then stay quiet: the SPAN is "dead".
    veth_ns.run(["ip", "addr", "add", "192.0.2.1/24", "dev", "tx0"])
    veth_ns.run(["ip", "neigh", "add", "192.0.2.99", "lladdr", "02:00:00:00:00:99", "dev", "tx0"])
    veth_ns.run(["ping", "-c", "3", "-i", "0.01", "-W", "0.2", "-I", "tx0", "192.0.2.99"], check=False)
    proc = veth_ns.run([sys.executable, "-c", NIC_PROBE, "rx0", "1"], cwd=str(Path(__file__).parents[2]))
    first, second = json.loads(proc.stdout)
    assert first["present"] and first["link_up"]
    assert first["rx_packets"] >= 3  # the echo requests reached rx0
    assert second["span_dead"] and second["seconds_since_packet"] >= 1
    veth_ns.run(["ip", "link", "set", "tx0", "down"])  # the peer goes: rx0 loses carrier
    proc = veth_ns.run([sys.executable, "-c", NIC_PROBE, "rx0", "0.1"], cwd=str(Path(__file__).parents[2]))
    down, _ = json.loads(proc.stdout)
    assert not down["link_up"] and not down["span_dead"]
    assert down["carrier_changes"] > first["carrier_changes"]
    gone = nic.read("nosuch0", nic.SpanWatch(1), sys_net="/sys/class/net", now=time.monotonic())
    assert not gone.present


def test_mount_options_find_the_spool_filesystem_and_emergency_ro() -> None:
    """A real mountinfo line of an ext4 that hit an error with errors=remount-ro (Linux 6.18)."""
    info = str(Path(__file__).resolve().parents[1] / "fixtures" / "mountinfo" / "emergency_ro.txt")
    opts = disk.mount_options("/tmp/rotest/m/lab/2026-11-26", mountinfo=info)
    assert "emergency_ro" in opts and "errors=remount-ro" in opts
    assert disk.mount_options("/srv/my spool/x", mountinfo=info) == {"rw", "relatime"}
    assert disk.mount_options("/tmp/rotest/mx", mountinfo=info) != opts  # a sibling path is not inside
