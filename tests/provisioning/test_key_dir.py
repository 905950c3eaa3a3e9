"""A box with rotating anonymisation keys ([privacy] key_dir): the role lets the hardened
sluice.service write that folder (ProtectSystem=strict leaves only ReadWritePaths writable) and
creates it for the capture user, 0700, before `sluice config check` looks at it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.build.units import RENDER, UNITS_DIR
from tests.conftest import REPO
from tests.provisioning.chroot import run_playbook

ROLE = REPO / "provisioning" / "roles" / "capture_node"


def _site_conf(tmp_path: Path, extra: dict[str, object]) -> str:
    result = run_playbook(Path("/dev/null"), {"render_dir": str(tmp_path), **extra}, playbook=RENDER)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return (tmp_path / UNITS_DIR / "sluice.service.d" / "site.conf").read_text()


def test_the_unit_may_write_the_key_folder(tmp_path: Path) -> None:
    conf = _site_conf(tmp_path / "keys", {"capture_node_config_extra": {"privacy": {"key_dir": "/srv/keys"}}})
    paths = [line.split("=", 1)[1].split() for line in conf.splitlines() if line.startswith("ReadWritePaths=")]
    assert paths and "/srv/keys" in paths[0], conf
    plain = _site_conf(tmp_path / "plain", {})
    assert "/srv/keys" not in plain and "ReadWritePaths=" in plain


def test_the_folder_is_made_before_the_config_is_checked() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "config.yml").read_text())
    names = [t["name"] for t in tasks]
    make = names.index("Create the rotating anonymisation keys' folder ([privacy] key_dir)")
    assert make < names.index("Write /etc/sluice/sluice.toml")
    task = tasks[make]["ansible.builtin.file"]
    assert task["mode"] == "0700" and task["owner"] == "{{ capture_node_user }}" and task["state"] == "directory"
