"""capture_storage's setup script never touches a disk that holds data unless told: with real
block devices (loop devices) of which one carries an ext4 filesystem, it stops before mdadm
with one line naming the disk and what is on it, and every disk is left as it was. (The array
creation itself needs md, which only the qemu guest of `make image-test` has.)"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.provisioning.chroot import have_tools, run_playbook

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(have_tools() is not None, reason=str(have_tools())),
]
HERE = Path(__file__).resolve().parent


def digest(device: str) -> str:
    return hashlib.sha256(Path(device).read_bytes()).hexdigest()


def render(tmp_path: Path, disks: list[str], **extra: object) -> Path:
    extra_vars = {"render_dir": str(tmp_path), "capture_storage_disks": disks,
                  "capture_storage_mount_point": str(tmp_path / "spool"), **extra}
    result = run_playbook(Path("/dev/null"), extra_vars, playbook=HERE / "render_storage_setup.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    return tmp_path / "sluice-storage-setup"


def test_a_disk_holding_a_filesystem_is_refused_and_nothing_is_touched(tmp_path: Path,
                                                                       loop_disks: list[str]) -> None:
    script = render(tmp_path, loop_disks)
    before = [digest(dev) for dev in loop_disks]
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"sluice-storage-setup: {loop_disks[1]} holds data (ext4); refusing to touch it "
                     "(set capture_storage_wipe_disks: true to overwrite)"]
    assert [digest(dev) for dev in loop_disks] == before
    label = subprocess.run(["blkid", "-p", "-s", "LABEL", "-o", "value", loop_disks[1]],
                           capture_output=True, text=True)
    assert label.stdout.strip() == "precious"


def test_a_missing_disk_is_refused(tmp_path: Path, loop_disks: list[str]) -> None:
    script = render(tmp_path, [loop_disks[0], loop_disks[2], "/dev/disk/by-id/ata-NOSUCHDISK"])
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "sluice-storage-setup: /dev/disk/by-id/ata-NOSUCHDISK is not a block device"
