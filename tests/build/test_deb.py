"""The Debian package: `make deb` builds it, lintian says only what docs/package.md explains, and
it installs with dpkg -i (apt for its dependencies) into a fresh Debian 12 minbase tree, runs,
and leaves nothing behind when purged."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.provisioning.chroot import cached_tree_tarball, read_package_list, unpack_tree

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def deb() -> Path:
    proc = subprocess.run(["make", "-C", str(REPO), "deb"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    built = sorted((REPO / "build" / "deb").glob("sluice-appliance_*.deb"))
    assert len(built) == 1, built
    return built[0]


def in_chroot(root: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs argv in the tree with /proc and /dev mounted in a private mount namespace (gone with it)."""
    script = f'mount -t proc proc "{root}/proc" && mount --rbind /dev "{root}/dev" && exec chroot "{root}" "$@"'
    proc = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", script, "sh", *argv],
                          capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
                               "LC_ALL": "C.UTF-8"})
    if check:
        assert proc.returncode == 0, f"{argv}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_lintian_reports_only_the_explained_tags(deb: Path) -> None:
    """No error or warning of its own; the vendored wheels' tags kept by the overrides (O:, for
    /usr/lib/sluice/python only) each explained in docs/package.md."""
    report = (deb.parent / "lintian.txt").read_text()
    assert not re.search(r"^[EW]: ", report, re.M), report[-4000:]
    kept = re.findall(r"^O: sluice-appliance: ([\w-]+) .*\[(\S+)\]$", report, re.M)
    assert kept, report[-2000:]  # the report does show what the overrides keep
    assert all(path.startswith("usr/lib/sluice/python/") for _, path in kept), kept
    explained = (REPO / "docs" / "package.md").read_text()
    assert all(f"`{tag}`" in explained for tag, _ in kept), ({t for t, _ in kept}, report[-2000:])


def test_package_holds_programs_units_man_pages_completion_and_monitoring(deb: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    for path in ("./usr/bin/sluice", "./usr/bin/sluice-capture", "./usr/bin/sluice-pcap",
                 "./lib/systemd/system/sluice.service", "./lib/systemd/system/sluice-nic-tune@.service",
                 "./usr/bin/sluice-keyd", "./lib/systemd/system/sluice-keyd.socket",
                 "./lib/systemd/system/sluice-keyd@.service", "./usr/share/man/man1/sluice-keyd.1.gz",
                 "./usr/lib/sysusers.d/sluice.conf", "./usr/lib/tmpfiles.d/sluice.conf",
                 "./usr/share/man/man1/sluice.1.gz", "./usr/share/man/man1/sluice-capture.1.gz",
                 "./usr/share/man/man1/sluice-pcap.1.gz", "./usr/share/bash-completion/completions/sluice-pcap",
                 "./usr/share/doc/sluice-appliance/examples/sluice.toml",
                 "./usr/share/sluice/monitoring/prometheus/rules/alerts.yml", "./usr/lib/sluice/python/appliance/"):
        assert f" {path}\n" in listing, path
    assert "zstandard" not in listing  # a test-only dependency stays out of the box


def test_every_dependency_is_in_the_image_package_list(deb: Path) -> None:
    """The image installs the package offline: what it depends on must be in the image's tree."""
    depends = subprocess.run(["dpkg-deb", "--field", str(deb), "Depends"], capture_output=True, text=True,
                             check=True).stdout
    names = {re.split(r"[ (]", alt.strip())[0] for dep in depends.split(",") for alt in dep.split("|")}
    # What every minbase tree has (libc6, and libstdc++6, libgcc-s1, zlib1g that the vendored
    # wheels' libraries link), read from the tree itself, plus what the image adds.
    status = subprocess.run(["tar", "-xOf", str(cached_tree_tarball(packages=[])), "./var/lib/dpkg/status"],
                            capture_output=True, text=True, check=True).stdout
    minbase = set(re.findall(r"^Package: (\S+)$", status, re.M))
    assert "libc6" in minbase
    image = set(read_package_list()) | minbase
    assert names <= image, sorted(names - image)


def test_installs_into_a_fresh_debian_12_runs_and_purges_cleanly(deb: Path, tmp_path: Path) -> None:
    root = unpack_tree(cached_tree_tarball(packages=[]), tmp_path / "root")
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    shutil.copy(deb, root / "tmp" / deb.name)
    before = set(in_chroot(root, "find", "/usr", "/lib", "/etc", "/srv", "/var/lib").stdout.split())
    in_chroot(root, "apt-get", "update", "-qq")
    # dpkg -i stops at the missing dependencies; apt installs them and finishes the configuration.
    first = in_chroot(root, "dpkg", "-i", f"/tmp/{deb.name}", check=False)
    assert first.returncode != 0 and "dependency problems" in first.stderr, first.stderr[-2000:]
    in_chroot(root, "apt-get", "-f", "install", "-y", "-qq", "--no-install-recommends")
    assert in_chroot(root, "dpkg-query", "-W", "-f=${Status}", "sluice-appliance").stdout == "install ok installed"

    assert in_chroot(root, "sluice", "--version").stdout.strip() == "sluice 0.1.0"
    assert in_chroot(root, "sluice-capture", "--version").stdout.strip() == "sluice-capture 0.1.0"
    check = in_chroot(root, "sluice", "config", "check", "/usr/share/doc/sluice-appliance/examples/sluice.toml")
    assert "ok" in check.stdout
    assert in_chroot(root, "getent", "passwd", "sluice").stdout.startswith("sluice:")
    assert "sluice\\-pcap dedup" in in_chroot(root, "sh", "-c", "zcat /usr/share/man/man1/sluice-pcap.1.gz").stdout

    # The postinst compiled Sluice's modules (read despite the wrapper's -B); the purge below
    # finds nothing of them left behind.
    pyc = list((root / "usr/lib/sluice/python/appliance/__pycache__").glob("extract.cpython-3*.pyc"))
    assert len(pyc) == 1, sorted((root / "usr/lib/sluice/python/appliance").iterdir())

    owned = in_chroot(root, "dpkg-query", "-L", "sluice-appliance").stdout.split()
    in_chroot(root, "apt-get", "purge", "-y", "-qq", "sluice-appliance")
    left = [p for p in owned if (root / p.lstrip("/")).exists() and not (root / p.lstrip("/")).is_dir()]
    assert not left, left
    after = set(in_chroot(root, "find", "/usr", "/lib", "/etc", "/srv", "/var/lib").stdout.split())
    stray = sorted(p for p in after - before if "sluice" in p)
    assert not stray, stray
