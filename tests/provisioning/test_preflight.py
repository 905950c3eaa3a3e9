"""Bad inventory values stop the play in its first play, with the assert's message, before any
task that changes something: against this machine (real interfaces and block devices in the
facts, only the read-only preflight tag runs) and against a chroot tree (which stays untouched)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.provisioning.chroot import (
    IMAGE_INVENTORY,
    build_artifacts,
    cached_tree_tarball,
    have_tools,
    recap,
    run_playbook,
    unpack_tree,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(have_tools() is not None, reason=str(have_tools())),
]

LOCAL_INVENTORY = """\
all:
  children:
    capture:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: /usr/bin/python3
    monitoring:
      hosts: {}
"""


@pytest.fixture(scope="module")
def local_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    path.write_text(LOCAL_INVENTORY)
    return path


@pytest.fixture(scope="module")
def good_local_vars() -> dict[str, object]:
    build_artifacts()  # the preflight checks that the package is there
    return {
        "capture_time_servers": ["ntp1.example.net"],
        "capture_storage_disks": ["/dev/loop0", "/dev/loop1", "/dev/loop2"],
        "capture_storage_check_devices": True,
        "capture_node_interfaces": ["lo"],
        "capture_node_check_interfaces": True,
    }


def preflight(inventory: Path, extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return run_playbook(inventory, extra, "--tags", "preflight")


def test_good_values_pass_the_preflight_and_change_nothing(local_inventory: Path,
                                                           good_local_vars: dict[str, object]) -> None:
    result = preflight(local_inventory, good_local_vars)
    assert result.returncode == 0, result.stdout[-3000:]
    counts = recap(result.stdout)["localhost"]
    assert counts["changed"] == 0 and counts["failed"] == 0


def test_missing_interface_stops_the_play(local_inventory: Path, good_local_vars: dict[str, object]) -> None:
    result = preflight(local_inventory, {**good_local_vars, "capture_node_interfaces": ["lo", "nosuchnic0"]})
    assert result.returncode != 0
    assert "capture_node_interfaces: nosuchnic0 does not exist on localhost" in result.stdout
    assert recap(result.stdout)["localhost"]["changed"] == 0


def test_missing_disk_stops_the_play(local_inventory: Path, good_local_vars: dict[str, object]) -> None:
    disks = ["/dev/loop0", "/dev/loop1", "/dev/disk/by-id/ata-NOSUCHDISK"]
    result = preflight(local_inventory, {**good_local_vars, "capture_storage_disks": disks})
    assert result.returncode != 0
    assert "capture_storage_disks: /dev/disk/by-id/ata-NOSUCHDISK is not a block device on localhost" \
        in result.stdout


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"capture_storage_disks": []}, "capture_storage_disks must list at least 3 distinct whole disks for RAID5"),
        ({"capture_storage_disks": ["/dev/loop0", "/dev/loop1"]}, "at least 3 distinct whole disks"),
        ({"capture_storage_disks": ["/dev/loop0", "/dev/loop0", "/dev/loop1"]}, "at least 3 distinct"),
        ({"capture_storage_level": 6}, "at least 4 distinct whole disks for RAID6"),
        ({"capture_node_interfaces": []}, "capture_node_interfaces must list the capture interfaces"),
        ({"capture_time_servers": [], "capture_time_pools": []}, "capture_time: list NTP servers"),
    ],
)
def test_bad_values_fail_with_their_message(local_inventory: Path, good_local_vars: dict[str, object],
                                            bad: dict[str, object], message: str) -> None:
    result = preflight(local_inventory, {**good_local_vars, **bad})
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]


def test_a_bad_value_leaves_the_chroot_untouched(tmp_path: Path) -> None:
    """The full playbook (no tag filter) against a pristine tree: the preflight fails, nothing runs."""
    root = unpack_tree(cached_tree_tarball(), tmp_path / "root")
    before = sorted(p.name for p in (root / "etc").iterdir())
    try:
        result = run_playbook(IMAGE_INVENTORY, {"ansible_host": str(root), "capture_storage_disks": []})
        assert result.returncode != 0
        assert "capture_storage_disks must list at least 3" in result.stdout
        assert "PLAY [Capture boxes]" not in result.stdout
        assert sorted(p.name for p in (root / "etc").iterdir()) == before
        assert not (root / "etc" / "sluice").exists()
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
