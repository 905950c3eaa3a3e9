"""Fixtures of the provisioning tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def loop_disks(tmp_path: Path) -> Iterator[list[str]]:
    """Three 64 MiB loop devices (real block devices); the second holds an ext4 filesystem."""
    devices: list[str] = []
    try:
        for n in range(3):
            backing = tmp_path / f"disk{n}.img"
            subprocess.run(["truncate", "-s", "64M", str(backing)], check=True)
            if n == 1:
                subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "precious", str(backing)], check=True)
            dev = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                                 capture_output=True, text=True).stdout.strip()
            devices.append(dev)
        yield devices
    finally:
        for dev in devices:
            subprocess.run(["losetup", "-d", dev], check=False)
