"""RAID, SMART and chrony parsers against fixtures of real outputs (this kernel has no md driver).

Where each fixture comes from, and the few that are SYNTHETIC, is in tests/fixtures/README.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from appliance.watchdogs import raid, smart
from appliance.watchdogs import time as time_wd

FIX = Path(__file__).resolve().parent.parent / "fixtures"


def mdstat(name: str) -> list[raid.MdArray]:
    return raid.parse_mdstat((FIX / "mdstat" / name).read_text())


def test_healthy_raid5_with_spare() -> None:
    [md1] = mdstat("raid5_healthy_spare.txt")
    assert (md1.name, md1.state, md1.level) == ("md1", "active", "raid5")
    assert [m.device for m in md1.members] == ["sdh", "sdg", "sdj", "sde", "sdk", "sdd"]
    assert (md1.raid_disks, md1.active_members, md1.status) == (5, 5, "UUUUU")
    assert [m.device for m in md1.members if m.spare] == ["sdk"]
    assert not md1.degraded
    assert (md1.failed_members, md1.spare_members, md1.sync_action, md1.sync_progress) == (0, 1, "idle", 1.0)


def test_degraded_raid5_u_u_with_failed_member() -> None:
    [md0] = mdstat("raid5_degraded_failed_u_u.txt")
    assert (md0.name, md0.level, md0.status) == ("md0", "raid5", "U_U")
    assert (md0.raid_disks, md0.active_members) == (3, 2)
    assert md0.degraded and md0.failed_members == 1 and md0.spare_members == 0
    assert [(m.device, m.slot) for m in md0.members if m.failed] == [("sdc1", 3)]


def test_failed_member_and_second_array() -> None:
    md5, md1 = mdstat("raid5_failed_member.txt")
    assert (md5.name, md5.level, md5.status, md5.raid_disks, md5.active_members) == ("md5", "raid5", "UUU_", 4, 3)
    assert md5.degraded and md5.failed_members == 1
    assert [m.device for m in md5.members if m.failed] == ["sdb1"]
    assert (md1.name, md1.level, md1.status) == ("md1", "raid1", "UU")
    assert not md1.degraded and md1.failed_members == 0


def test_failed_extra_member_leaves_array_complete() -> None:
    # Six members for five slots: the (F) one is surplus, the kernel still says [5/5] [UUUUU].
    md1, md0 = mdstat("raid1_failed_extra_member.txt")
    assert (md1.raid_disks, md1.active_members, len(md1.members)) == (5, 5, 6)
    assert md1.failed_members == 1 and not md1.degraded
    assert [m.device for m in md1.members if m.failed] == ["sdh1"]
    assert md0.name == "md0" and not md0.degraded


def test_resync_progress_and_delayed_resync() -> None:
    md1, md0 = mdstat("raid5_resync_delayed_raid1_resync.txt")
    # a new RAID5 waiting for md0: [3/2] [UU_], "\tresync=DELAYED", no progress yet
    assert (md1.name, md1.level, md1.status) == ("md1", "raid5", "UU_")
    assert md1.degraded and md1.failed_members == 0
    assert (md1.sync_action, md1.sync_progress) == ("resync", 0.0)
    # resync = 21.5% (842944/3904512)
    assert (md0.name, md0.level, md0.sync_action) == ("md0", "raid1", "resync")
    assert md0.sync_progress == pytest.approx(0.215)
    assert md0.sync_progress == pytest.approx(842944 / 3904512, abs=1e-3)
    assert not md0.degraded


def test_check_progress_and_delayed_resync_raid1() -> None:
    md1, md0 = mdstat("raid1_check_and_resync_delayed.txt")
    assert (md1.sync_action, md1.sync_progress, md1.degraded) == ("resync", 0.0, False)
    assert (md0.sync_action, md0.degraded) == ("check", False)
    assert md0.sync_progress == pytest.approx(0.064)


def test_recovery_during_replace_with_spare() -> None:
    [md0] = mdstat("raid5_replace_recovery_spare.txt")
    assert (md0.level, md0.raid_disks, md0.active_members, md0.status) == ("raid5", 4, 4, "UUUU")
    assert not md0.degraded  # `mdadm --replace`: the old member serves until the (R) one is in
    assert md0.sync_action == "recovery" and md0.sync_progress == pytest.approx(0.014)
    assert md0.spare_members == 1 and md0.failed_members == 0
    assert {m.device: m.flags for m in md0.members if m.flags} == {"sdk1": "R", "sdf1": "S"}


def test_recovery_of_degraded_raid6() -> None:
    [md0] = mdstat("raid6_recovery_readd.txt")  # starts with the "# cat /proc/mdstat" prompt line
    assert (md0.name, md0.level, md0.status, md0.raid_disks, md0.active_members) == ("md0", "raid6", "U_UUUU", 6, 5)
    assert md0.degraded and len(md0.members) == 6
    assert md0.sync_action == "recovery" and md0.sync_progress == pytest.approx(0.002)


def test_auto_read_only_arrays() -> None:
    arrays = mdstat("raid1_auto_read_only.txt")
    assert [(a.name, a.state) for a in arrays] == [
        ("md2", "active (auto-read-only)"), ("md1", "active"), ("md0", "active (auto-read-only)")]
    assert all(a.level == "raid1" and a.status == "UU" and not a.degraded for a in arrays)


def test_inactive_array_counts_as_degraded() -> None:
    [md0] = mdstat("inactive.txt")
    assert md0.state == "inactive" and md0.level is None
    assert [m.device for m in md0.members] == ["sdd"] and md0.spare_members == 1
    assert md0.degraded and not md0.container


def test_imsm_container_is_not_degraded() -> None:
    md127, md0 = mdstat("imsm_container.txt")
    assert (md127.name, md127.level, md127.status, md127.degraded, md127.container) == (
        "md127", "raid1", "UU", False, False)
    assert (md0.name, md0.state, md0.container) == ("md0", "inactive", True)
    assert not md0.degraded and md0.spare_members == 2


def test_no_arrays() -> None:
    assert mdstat("none.txt") == []


def test_sysfs_completes_mdstat(tmp_path: Path) -> None:
    arrays = raid.read_arrays(FIX / "mdstat" / "degraded_raid5.txt", FIX / "sysblock")
    [md] = arrays
    assert md.sysfs_degraded == 1 and md.array_state == "clean"
    assert md.sync_action == "recovery"
    assert md.sync_progress == pytest.approx(13107200 / 15627540480)


def test_sysfs_delayed_sync_completed(tmp_path: Path) -> None:
    # The kernel writes "delayed" (not "N / M") to sync_completed of an array whose sync waits.
    md = tmp_path / "md1" / "md"
    md.mkdir(parents=True)
    (md / "sync_action").write_text("resync\n")
    (md / "sync_completed").write_text("delayed\n")
    md1, md0 = raid.read_arrays(FIX / "mdstat" / "raid1_check_and_resync_delayed.txt", tmp_path)
    assert (md1.sync_action, md1.sync_progress) == ("resync", 0.0)
    assert md0.sync_action == "check" and md0.sync_progress == pytest.approx(0.064)


def test_no_md_driver_gives_no_arrays(tmp_path: Path) -> None:
    assert raid.read_arrays(tmp_path / "mdstat-absent", tmp_path) == []


def load(name: str) -> dict:
    return json.loads((FIX / "smartctl" / name).read_text())


def test_smart_passed_nvme() -> None:
    assert smart.parse_health(load("nvme_passed_samsung970evo.json")) == smart.SmartHealth("/dev/nvme0", True, "")


def test_smart_failing_ata() -> None:
    doc = load("ata_failing_now_wd3200bevt.json")
    assert doc["smartctl"]["exit_status"] & 0x08  # smartctl's "DISK FAILING" bit
    assert smart.parse_health(doc) == smart.SmartHealth("/dev/sdb", False, "SMART overall-health test failed")


def test_smart_synthetic_ata_passed() -> None:
    assert smart.parse_health(load("ata_passed.json")) == smart.SmartHealth("/dev/sda", True, "")


def test_smart_no_status() -> None:
    # `smartctl -H -j` that could not read the health status (exit 2): no verdict either way.
    no_status = smart.parse_health(load("ata_no_status_exit2.json"))
    assert no_status == smart.SmartHealth("/dev/sdd", None, "no SMART status")
    failed_open = smart.parse_health(load("open_failed_windows.json"), "/dev/sda")
    assert failed_open.device == "/dev/sda" and failed_open.healthy is None
    assert "Open failed, Error=5" in failed_open.message
    unsupported = smart.parse_health(load("unsupported_virtio.json"), "/dev/vda")
    assert unsupported.healthy is None and unsupported.message == "/dev/vda: Unable to detect device type"


def test_smart_scan() -> None:
    assert smart.parse_scan(load("scan_two.json")) == ["/dev/sda", "/dev/nvme0"]
    assert smart.parse_scan(load("scan_none.json")) == []


def chrony(name: str) -> time_wd.ChronyTracking | None:
    return time_wd.parse_chrony_tracking((FIX / "chronyc" / name).read_text())


def test_chrony_tracking_synced() -> None:
    t = chrony("tracking_synced.csv")
    assert t is not None
    assert (t.reference, t.stratum, t.leap_status) == ("127.0.0.1", 9, "Normal")
    assert t.offset_seconds == pytest.approx(1.847e-6)
    # The same moment as chronyc prints it for people: "... seconds fast of NTP time" is a positive offset.
    text = (FIX / "chronyc" / "tracking_synced.txt").read_text()
    m = re.search(r"System time\s*:\s*([\d.]+) seconds (fast|slow) of NTP time", text)
    assert m is not None
    assert t.offset_seconds == pytest.approx(float(m[1]) * (1 if m[2] == "fast" else -1))
    # the error bound journaled for `sluice merge`: root dispersion + root delay / 2 + the offset
    delay = float(re.search(r"Root delay\s*:\s*([\d.]+)", text)[1])  # type: ignore[index]
    dispersion = float(re.search(r"Root dispersion\s*:\s*([\d.]+)", text)[1])  # type: ignore[index]
    assert t.error_seconds == pytest.approx(dispersion + delay / 2 + 1.847e-6, rel=1e-3)


def test_chrony_tracking_local_and_unsynchronised() -> None:
    local = chrony("tracking_local_stratum10.csv")
    assert local is not None
    assert (local.reference, local.stratum, local.leap_status, local.offset_seconds) == ("7F7F0101", 10, "Normal", 0.0)
    unsync = chrony("tracking_unsynchronised.csv")
    assert unsync is not None
    assert (unsync.reference, unsync.stratum, unsync.leap_status) == ("00000000", 0, "Not synchronised")
    assert time_wd.parse_chrony_tracking("506 Cannot talk to daemon") is None
    assert time_wd.parse_chrony_tracking("") is None
