"""The capture roles applied to a Debian root tree with Ansible's chroot connection, exactly as
`make image` applies them (image/inventory.yml: spool created at first boot, services enabled
but not started), twice: the second run changes nothing, and what the first wrote is right."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import config as sluice_config
from tests.conftest import REPO
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
    # The module fixture builds the package when the tree changed (2-3 min here) and runs the
    # playbook twice (about 3 min each on a loaded 2-core machine).
    pytest.mark.timeout(1500),
]

HOST = "sluice-appliance"


@dataclass
class Provisioned:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    """A fresh tree with the roles applied twice (about a minute; a cold tree cache adds one)."""
    root = unpack_tree(cached_tree_tarball(), tmp_path_factory.mktemp("chroot") / "root")
    build_artifacts()
    extra = {"ansible_host": str(root),
             # a backup target: the pipeline service runs beside the capture (docs/pipeline.md)
             "capture_node_config_extra": {"pipeline": {"backup": ["/srv/sluice-backup", "ssh://backup1/srv/sluice"],
                                                        "processed": "/data/sluice-processed"}}}
    first = run_playbook(IMAGE_INVENTORY, extra)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = run_playbook(IMAGE_INVENTORY, extra)
    yield Provisioned(root=root, first=first, second=second)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def in_root(p: Provisioned, relative: str) -> Path:
    return p.root / relative.lstrip("/")


def chroot(p: Provisioned, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(p.root), *argv], capture_output=True, text=True, timeout=60)


def test_first_run_changes_the_tree_and_second_run_changes_nothing(provisioned: Provisioned) -> None:
    first, second = recap(provisioned.first.stdout)[HOST], recap(provisioned.second.stdout)[HOST]
    assert first["changed"] > 10 and first["failed"] == 0
    assert provisioned.second.returncode == 0, provisioned.second.stdout[-4000:]
    assert second["changed"] == 0, [line for line in provisioned.second.stdout.splitlines()
                                    if line.startswith("changed:")]
    assert second["failed"] == 0 and second["unreachable"] == 0


def test_config_renders_and_validates_with_sluice_itself(provisioned: Provisioned) -> None:
    path = in_root(provisioned, "/etc/sluice/sluice.toml")
    data = tomllib.loads(path.read_text())
    assert data["capture"]["interfaces"] == ["c0"]
    assert data["capture"]["spool"] == "/data/sluice"
    assert data["metrics"]["listen"] == "0.0.0.0:9750"
    cfg = sluice_config.loads(path.read_text(), str(path))
    assert cfg.interfaces == ["c0"]
    # The sluice the package installed into the tree checks the same file.
    result = chroot(provisioned, "/usr/bin/sluice", "config", "check", "/etc/sluice/sluice.toml")
    assert result.returncode == 0, result.stderr
    st = path.stat()
    assert oct(st.st_mode & 0o7777) == "0o640" and st.st_uid == 0


def test_the_package_is_installed_with_its_user(provisioned: Provisioned) -> None:
    status = chroot(provisioned, "dpkg-query", "-W", "-f=${Status} ${Version}", "sluice-appliance").stdout
    assert status.startswith("install ok installed ")
    assert chroot(provisioned, "getent", "passwd", "sluice").stdout.startswith("sluice:")
    assert chroot(provisioned, "/usr/bin/sluice-capture", "--version").stdout.startswith("sluice-capture ")
    assert not in_root(provisioned, "/usr/local/bin/sluice").exists()


def test_sluice_group_owns_the_spool_mount_point_setgid(provisioned: Provisioned) -> None:
    result = chroot(provisioned, "stat", "-c", "%U:%G %a", "/data/sluice")
    assert result.stdout.strip() == "sluice:sluice 2750"  # the supervisor's user writes it
    assert oct(in_root(provisioned, "/data").stat().st_mode & 0o7777) == "0o755"


def test_storage_is_left_for_first_boot_with_guarded_script(provisioned: Provisioned) -> None:
    mdadm_conf = in_root(provisioned, "/etc/mdadm/mdadm.conf").read_text()
    assert "ARRAY /dev/md/spool metadata=1.2 name=spool" in mdadm_conf
    fstab = [line.split() for line in in_root(provisioned, "/etc/fstab").read_text().splitlines()
             if line.startswith("LABEL=sluice-spool")]
    assert len(fstab) == 1
    assert fstab[0][1:3] == ["/data/sluice", "xfs"]
    assert {"noatime", "inode64", "nofail"} <= set(fstab[0][3].split(","))
    script = in_root(provisioned, "/usr/local/sbin/sluice-storage-setup")
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "/dev/disk/by-id/virtio-sluice-spool-4" in text and "CHUNK_KIB=64" in text
    wants = in_root(provisioned, "/etc/systemd/system/local-fs.target.wants/sluice-storage-setup.service")
    assert wants.is_symlink()


def test_units_enabled_and_capture_spoilers_masked(provisioned: Provisioned) -> None:
    wants = in_root(provisioned, "/etc/systemd/system/multi-user.target.wants")
    for unit in ("sluice.service", "sluice-firewall.service", "sluice-conns.service", "chrony.service",
                 "systemd-networkd.service"):
        assert (wants / unit).is_symlink(), unit
    for unit in ("plocate-updatedb.timer", "apt-daily-upgrade.timer", "unattended-upgrades.service"):
        assert os.readlink(in_root(provisioned, f"/etc/systemd/system/{unit}")) == "/dev/null"
    # The package's unit and this box's drop-in, as systemd reads them.
    service = (in_root(provisioned, "/lib/systemd/system/sluice.service").read_text()
               + in_root(provisioned, "/etc/systemd/system/sluice.service.d/site.conf").read_text())
    assert "LimitMEMLOCK=infinity" in service and "Restart=always" in service
    assert "RequiresMountsFor=/data/sluice" in service and "ReadWritePaths=/data/sluice" in service
    # Capture must not wait for a management network to come "online".
    assert "network-online.target" not in "".join(line for line in service.splitlines() if not line.startswith("#"))
    caps = [line for line in service.splitlines() if line.startswith("CapabilityBoundingSet=")][-1]
    assert "CAP_NET_RAW" in caps and "CAP_SYS_ADMIN" not in caps
    # Not root: the sluice user, the capabilities ambient (its writers drop them), no tuning.
    assert "User=sluice" in service.splitlines() and "Group=sluice" in service.splitlines()
    ambient = next(line for line in service.splitlines() if line.startswith("AmbientCapabilities="))
    assert ambient.split("=", 1)[1] == caps.split("=", 1)[1] and "CAP_SYS_NICE" not in ambient
    passwd = chroot(provisioned, "getent", "passwd", "sluice").stdout.split(":")
    assert passwd[0] == "sluice" and passwd[2] != "0" and passwd[6].strip() == "/usr/sbin/nologin"
    cfg = tomllib.loads(in_root(provisioned, "/etc/sluice/sluice.toml").read_text())
    assert cfg["capture"]["readers_group"] == "sluice" and cfg["nic"]["tune"] is False
    # systemd itself accepts the units (offline, inside the tree).
    result = chroot(provisioned, "systemd-analyze", "verify", "--man=no",
                    "/etc/systemd/system/sluice-storage-setup.service",
                    "/etc/systemd/system/sluice-firewall.service",
                    "/etc/systemd/system/sluice-conns.service", "/etc/systemd/system/sluice-meta.service",
                    "/etc/systemd/system/sluice-meta.timer", "/etc/systemd/system/sluice-campaign.service",
                    "/etc/systemd/system/sluice-campaign.timer",
                    "/etc/systemd/system/sluice-pipeline.service")
    assert "error" not in result.stderr.lower() or "Failed to" in result.stderr, result.stderr
    timers = in_root(provisioned, "/etc/systemd/system/timers.target.wants")
    for unit in ("sluice-meta.timer", "sluice-campaign.timer"):
        assert (timers / unit).is_symlink(), unit
    assert "sluice meta collect --config" in in_root(provisioned, "/etc/systemd/system/sluice-meta.service").read_text()
    assert "OnUnitActiveSec=1h" in in_root(provisioned, "/etc/systemd/system/sluice-meta.timer").read_text()
    pipeline = in_root(provisioned, "/etc/systemd/system/sluice-pipeline.service").read_text()
    assert (wants / "sluice-pipeline.service").is_symlink()
    assert "ExecStart=/usr/bin/sluice pipeline run --config /etc/sluice/sluice.toml" in pipeline
    assert "ReadWritePaths=/data/sluice /srv/sluice-backup /data/sluice-processed" in pipeline
    conns = in_root(provisioned, "/etc/systemd/system/sluice-conns.service").read_text()
    assert "sluice conns --log /var/log/sluice/conns.jsonl" in conns and "--metrics 127.0.0.1:9751" in conns


def test_nic_tuning_hooks_cover_appearance_and_link_up(provisioned: Provisioned) -> None:
    rules = in_root(provisioned, "/etc/udev/rules.d/70-sluice-nic-tune.rules").read_text()
    assert 'KERNEL=="c0"' in rules and "sluice-nic-tune@%k.service" in rules
    unit = in_root(provisioned, "/lib/systemd/system/sluice-nic-tune@.service").read_text()
    assert "BindsTo=sys-subsystem-net-devices-%i.device" in unit
    hook = in_root(provisioned, "/etc/networkd-dispatcher/carrier.d/50-sluice-nic-tune")
    assert os.access(hook, os.X_OK)
    # The hook restarts the tuning for a capture interface and ignores any other.
    env = {"PATH": "/nonexistent"}
    other = subprocess.run(["/bin/sh", str(hook)], env={**env, "IFACE": "eth0"}, capture_output=True)
    assert other.returncode == 0
    ours = subprocess.run(["/bin/sh", str(hook)], env={**env, "IFACE": "c0"}, capture_output=True, text=True)
    assert ours.returncode != 0 and "systemctl" in ours.stderr


def test_chrony_steps_only_at_start_and_keeps_the_kernel_flag_honest(provisioned: Provisioned) -> None:
    conf = in_root(provisioned, "/etc/chrony/chrony.conf").read_text().splitlines()
    assert "makestep 1.0 3" in conf and "rtcsync" in conf
    assert "pool 2.debian.pool.ntp.org iburst" in conf


def test_metrics_firewall_loads_and_drops_all_but_monitoring(provisioned: Provisioned) -> None:
    rules = in_root(provisioned, "/etc/sluice/metrics.nft")
    # Loaded twice into a private network namespace: the file replaces its own table.
    script = f"nft -f {rules} && nft -f {rules} && nft list table inet sluice_metrics"
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    listing = result.stdout
    assert "192.0.2.5" in listing and "2001:db8::5" in listing
    assert 'tcp dport 9750 iifname "lo" accept' in listing
    assert listing.strip().count("tcp dport 9750 counter packets 0 bytes 0 drop") == 1


def test_image_manifest_reads_the_installed_package_from_the_tree(provisioned: Provisioned) -> None:
    """image/build's manifest comes from the tree: the package dpkg installed, the .deb the role
    copied, the Python distributions the package vendors (the pins of pyproject.toml)."""
    result = subprocess.run([str(REPO / "image" / "manifest-packages"), str(provisioned.root)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    sections: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            current.append(line)
    version = chroot(provisioned, "dpkg-query", "-W", "-f=${Version}", "sluice-appliance").stdout
    assert sections["sluice-appliance"][0] == f"version: {version}"
    deb = in_root(provisioned, "/var/cache/sluice/sluice-appliance.deb").read_bytes()
    assert sections["sluice-appliance"][1] == f"deb_sha256: {hashlib.sha256(deb).hexdigest()}"
    vendored = {canonical(line.split("==")[0]): line.split("==")[1] for line in sections["python"]}
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for pin in pins:
        name, _, pinned = pin.partition("==")
        assert vendored.get(canonical(name)) == pinned, (pin, vendored)
    assert vendored["sluice"] == version
    assert f"sluice-appliance={version}" in sections["packages"] and "chrony" in " ".join(sections["packages"])


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
