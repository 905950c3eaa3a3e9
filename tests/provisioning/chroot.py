"""A Debian root tree for applying the roles with Ansible's chroot connection, built once.

mmdebstrap writes the tree as a tarball into a cache outside the repository, keyed by the suite,
the mirror and image/packages.txt; each test unpacks a fresh copy (a few seconds), so every
test starts from the same pristine tree and a cold build (about a minute) happens only when
the package list changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

SUITE = "bookworm"
MIRROR = os.environ.get("SLUICE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("SLUICE_TEST_CACHE", "/var/cache/sluice-test"))
PACKAGES_FILE = REPO / "image" / "packages.txt"
PROVISIONING = REPO / "provisioning"
IMAGE_INVENTORY = REPO / "image" / "inventory.yml"
ARTIFACTS = REPO / "build" / "artifacts"


def read_package_list(path: Path = PACKAGES_FILE) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return sorted(set(names))


def cache_key(packages: list[str]) -> str:
    text = json.dumps({"suite": SUITE, "mirror": MIRROR, "packages": packages}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_tree_tarball(packages: list[str] | None = None) -> Path:
    """The tarball of a tree with these packages (default: the image's), built with mmdebstrap on
    first use (cold: about a minute)."""
    packages = read_package_list() if packages is None else sorted(set(packages))
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"chroot-{SUITE}-{cache_key(packages)}.tar"
    with open(CACHE / "chroot.lock", "w") as lock:
        # Two test runs at once build the tree once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            partial = tarball.with_suffix(".tar.part")
            subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=minbase", "--format=tar",
                 *([f"--include={','.join(packages)}"] if packages else []), SUITE, str(partial), MIRROR],
                check=True,
            )
            partial.rename(tarball)
    return tarball


def unpack_tree(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(tarball), "-C", str(dest)], check=True)
    return dest


def build_artifacts() -> Path:
    """The sluice-appliance package for capture_node (and the wheels and binaries it was made
    of), as `make provisioning-artifacts`; not rebuilt when the tree did not change."""
    subprocess.run(["flock", "/tmp/sluice-deb.lock", str(REPO / "packaging" / "build-deb")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "SLUICE_ARTIFACTS": str(ARTIFACTS)})
    return ARTIFACTS


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(PROVISIONING / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": "/tmp/sluice-ansible-local",
    })
    return env


def run_playbook(inventory: Path, extra_vars: dict[str, object], *args: str,
                 playbook: Path = PROVISIONING / "site.yml") -> subprocess.CompletedProcess[str]:
    argv = ["ansible-playbook", "-i", str(inventory), "-e", json.dumps(extra_vars), *args, str(playbook)]
    return subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=900)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {"ok": n, "changed": n, "failed": n, ...}}."""
    hosts: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line:
            host, _, counts = line.partition(":")
            hosts[host.strip()] = {k: int(v) for k, v in (f.split("=") for f in counts.split())}
    return hosts


def have_tools() -> str | None:
    for tool in ("ansible-playbook", "ansible-lint", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: `make test` installs it via deps/apt/provisioning.txt"
    return None
