"""image/manifest-packages (the image manifest's package sections) refuses a tree without the
installed package with one line and exit 2; tests/provisioning/test_roles_chroot.py reads a
provisioned tree with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "image" / "manifest-packages"


def test_a_tree_without_the_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var" / "lib" / "dpkg").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "dpkg" / "status").write_text("")
    result = subprocess.run([str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == f"manifest-packages: sluice-appliance is not installed in {tmp_path}"
    assert result.stdout == ""


def test_a_missing_tree_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([str(SCRIPT), str(tmp_path / "nonexistent")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.startswith("usage: image/manifest-packages")
