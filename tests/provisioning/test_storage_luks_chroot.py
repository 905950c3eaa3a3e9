"""capture_storage with `capture_storage_luks: true` applied to a Debian root tree with Ansible's
chroot connection, as `make image` applies it (the spool made at first boot), twice: the second
run changes nothing; crypttab, fstab and the units are what systemd's own generators turn into
an encrypted spool opened with the key file and mounted from the mapper device; no key is baked
into the tree (each box generates its own at first boot)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.provisioning.chroot import (
    cached_tree_tarball,
    have_tools,
    read_package_list,
    recap,
    run_playbook,
    unpack_tree,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(have_tools() is not None, reason=str(have_tools())),
    pytest.mark.timeout(1200),
]

HERE = Path(__file__).resolve().parent
HOST = "sluice-storage"
DISKS = [f"/dev/disk/by-id/virtio-sluice-spool-{n}" for n in (1, 2, 3)]


@dataclass
class Applied:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    # The image's packages and the LUKS tools (the role installs them when luks is on).
    tree = cached_tree_tarball(read_package_list() + ["cryptsetup-bin"])
    base = tmp_path_factory.mktemp("luks-chroot")
    root = unpack_tree(tree, base / "root")
    inventory = base / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {HOST: {
        "ansible_connection": "community.general.chroot", "ansible_host": str(root),
        "ansible_python_interpreter": "/usr/bin/python3",
        "capture_storage_apply": "first_boot", "capture_storage_disks": DISKS, "capture_storage_chunk_kib": 64,
        "capture_storage_mount_point": "/data/sluice", "capture_storage_luks": True}}}}))
    first = run_playbook(inventory, {}, playbook=HERE / "apply_capture_storage.yml")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = run_playbook(inventory, {}, playbook=HERE / "apply_capture_storage.yml")
    yield Applied(root, first, second)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def in_root(a: Applied, path: str) -> Path:
    return a.root / path.lstrip("/")


def chroot(a: Applied, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(a.root), *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})})


def test_second_run_changes_nothing(applied: Applied) -> None:
    first, second = recap(applied.first.stdout)[HOST], recap(applied.second.stdout)[HOST]
    assert first["changed"] > 5 and first["failed"] == 0
    assert second["changed"] == 0 and second["failed"] == 0, [
        line for line in applied.second.stdout.splitlines() if line.startswith("changed:")]


def test_crypttab_and_fstab_put_the_spool_on_the_mapper_device(applied: Applied) -> None:
    crypttab = [line.split() for line in in_root(applied, "/etc/crypttab").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert crypttab == [["spool_crypt", "/dev/md/spool", "/etc/cryptsetup-keys.d/spool_crypt.key",
                         "luks,nofail,x-systemd.device-timeout=90s"]]
    fstab = [line.split() for line in in_root(applied, "/etc/fstab").read_text().splitlines()
             if "/data/sluice" in line]
    assert len(fstab) == 1 and fstab[0][:3] == ["/dev/mapper/spool_crypt", "/data/sluice", "xfs"]
    assert "nofail" in fstab[0][3].split(",")
    # no key in the image: the first boot generates each box's own
    keys = in_root(applied, "/etc/cryptsetup-keys.d")
    assert oct(keys.stat().st_mode & 0o777) == "0o700" and keys.stat().st_uid == 0 and not list(keys.iterdir())
    assert chroot(applied, "cryptsetup", "--version").stdout.startswith("cryptsetup 2.")
    for script in ("/usr/local/sbin/sluice-spool-luks", "/usr/local/sbin/sluice-storage-setup"):
        assert os.access(in_root(applied, script), os.X_OK)
        assert subprocess.run(["bash", "-n", str(in_root(applied, script))]).returncode == 0
    setup = in_root(applied, "/usr/local/sbin/sluice-storage-setup").read_text()
    assert "FS_DEVICE=/dev/mapper/spool_crypt" in setup and "STRIPE_KIB=128" in in_root(
        applied, "/usr/local/sbin/sluice-spool-luks").read_text()


def test_systemd_generators_make_the_boot_units(applied: Applied) -> None:
    """systemd's own generators, run in the tree, read crypttab and fstab into the units of the
    next boots: the volume opened with the key file after the first-boot setup, the spool mounted
    from the mapper device."""
    out = "/run/sluice-generator-test"
    gen = in_root(applied, out)
    gen.mkdir(parents=True)
    env = {"SYSTEMD_PROC_CMDLINE": "quiet"}  # not the build machine's kernel command line
    for generator in ("systemd-cryptsetup-generator", "systemd-fstab-generator"):
        result = chroot(applied, f"/lib/systemd/system-generators/{generator}", out, out, out, env=env)
        assert result.returncode == 0, result.stderr
    unit = (gen / "systemd-cryptsetup@spool_crypt.service").read_text()
    assert "ExecStart=/lib/systemd/systemd-cryptsetup attach 'spool_crypt' '/dev/md/spool' " \
           "'/etc/cryptsetup-keys.d/spool_crypt.key' 'luks,nofail'" in unit
    assert {"BindsTo=dev-md-spool.device", "After=dev-md-spool.device"} <= set(unit.splitlines())
    assert "JobRunningTimeoutSec=90s" in (gen / "dev-md-spool.device.d" / "50-device-timeout.conf").read_text()
    assert (gen / "dev-mapper-spool_crypt.device.requires" / "systemd-cryptsetup@spool_crypt.service").is_symlink()
    mount = (gen / "data-sluice.mount").read_text()
    assert "What=/dev/mapper/spool_crypt" in mount and "Type=xfs" in mount
    dropin = in_root(applied, "/etc/systemd/system/systemd-cryptsetup@spool_crypt.service.d/sluice-storage-setup.conf")
    assert "After=sluice-storage-setup.service" in dropin.read_text().splitlines()
    assert in_root(applied, "/etc/systemd/system/local-fs.target.wants/sluice-storage-setup.service").is_symlink()
