"""RAID, SMART and chrony parsers against fixtures of real outputs (this kernel has no md driver)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.watchdogs import raid, smart
from appliance.watchdogs import time as time_wd

FIX = Path(__file__).resolve().parent.parent / "fixtures"


def mdstat(name: str) -> list[raid.MdArray]:
    return raid.parse_mdstat((FIX / "mdstat" / name).read_text())


def test_healthy_raid1() -> None:
    [md0] = mdstat("healthy_raid1.txt")
    assert (md0.name, md0.state, md0.level) == ("md0", "active", "raid1")
    assert [m.device for m in md0.members] == ["sdb1", "sda1"]
    assert (md0.raid_disks, md0.active_members, md0.status) == (2, 2, "UU")
    assert not md0.degraded
    assert (md0.failed_members, md0.spare_members, md0.sync_progress) == (0, 0, 1.0)


def test_degraded_raid5_u_u() -> None:
    [md] = mdstat("degraded_raid5.txt")
    assert md.name == "md127" and md.level == "raid5"
    assert md.status == "U_U" and md.raid_disks == 3 and md.active_members == 2
    assert md.degraded and md.failed_members == 0


def test_failed_member_and_second_array() -> None:
    md1, md0 = mdstat("failed_member.txt")
    assert md1.name == "md1" and md1.degraded and md1.failed_members == 1
    assert [m.device for m in md1.members if m.failed] == ["sdb2"]
    assert md0.name == "md0" and not md0.degraded


def test_resync_progress() -> None:
    [md] = mdstat("resyncing.txt")
    assert md.sync_action == "resync"
    assert md.sync_progress == pytest.approx(0.126)
    assert not md.degraded


def test_recovery_with_spare() -> None:
    [md] = mdstat("recovering_with_spare.txt")
    assert md.level == "raid6" and md.degraded
    assert md.sync_action == "recovery" and md.sync_progress == pytest.approx(0.375)
    assert md.spare_members == 1 and md.active_members == 4


def test_inactive_array_counts_as_degraded() -> None:
    [md] = mdstat("inactive.txt")
    assert md.state == "inactive" and md.level is None
    assert md.spare_members == 2 and md.degraded


def test_no_arrays() -> None:
    assert mdstat("none.txt") == []


def test_sysfs_completes_mdstat(tmp_path: Path) -> None:
    arrays = raid.read_arrays(FIX / "mdstat" / "degraded_raid5.txt", FIX / "sysblock")
    [md] = arrays
    assert md.sysfs_degraded == 1 and md.array_state == "clean"
    assert md.sync_action == "recovery"
    assert md.sync_progress == pytest.approx(13107200 / 15627540480)


def test_no_md_driver_gives_no_arrays(tmp_path: Path) -> None:
    assert raid.read_arrays(tmp_path / "mdstat-absent", tmp_path) == []


def load(name: str) -> dict:
    return json.loads((FIX / "smartctl" / name).read_text())


def test_smart_passed_failed_unsupported() -> None:
    assert smart.parse_health(load("ata_passed.json")) == smart.SmartHealth("/dev/sda", True, "")
    failed = smart.parse_health(load("ata_failed.json"))
    assert failed.device == "/dev/sdb" and failed.healthy is False
    assert smart.parse_health(load("nvme_passed.json")).healthy is True
    unsupported = smart.parse_health(load("unsupported_virtio.json"), "/dev/vda")
    assert unsupported.healthy is None and "Unable to detect device type" in unsupported.message


def test_smart_scan() -> None:
    assert smart.parse_scan(load("scan_two.json")) == ["/dev/sda", "/dev/nvme0"]
    assert smart.parse_scan(load("scan_none.json")) == []


def test_chrony_tracking_csv() -> None:
    t = time_wd.parse_chrony_tracking((FIX / "chronyc" / "tracking.csv").read_text())
    assert t is not None
    assert t.stratum == 3 and t.reference == "ntp1.example.net" and t.leap_status == "Normal"
    assert t.offset_seconds == pytest.approx(0.000012345)
    assert time_wd.parse_chrony_tracking("506 Cannot talk to daemon") is None
