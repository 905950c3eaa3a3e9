"""A box whose writers rotate anonymisation keys (capture_node_key_rotation): the role enables the
package's sluice-keyd.socket, the writers get [privacy] key_socket and the key period, and
sluice.service needs the socket; by default none of it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from appliance import config
from tests.build.units import RENDER, UNITS_DIR
from tests.conftest import REPO
from tests.provisioning.chroot import run_playbook

ROLE = REPO / "provisioning" / "roles" / "capture_node"


def _render(tmp_path: Path, extra: dict[str, object]) -> tuple[str, str]:
    """sluice.service's site drop-in and sluice.toml as the role writes them."""
    result = run_playbook(Path("/dev/null"), {"render_dir": str(tmp_path), **extra}, playbook=RENDER)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return ((tmp_path / UNITS_DIR / "sluice.service.d" / "site.conf").read_text(),
            (tmp_path / "etc" / "sluice" / "sluice.toml").read_text())


def test_key_rotation_gives_the_writers_the_key_keepers_socket(tmp_path: Path) -> None:
    conf, toml = _render(tmp_path / "keys", {"capture_node_key_rotation": True, "capture_node_interfaces": ["span0"],
                                             "capture_node_key_rotate_seconds": 3600})
    assert "Requires=sluice-keyd.socket" in conf and "After=sluice-keyd.socket" in conf, conf
    privacy = tomllib.loads(toml)["privacy"]
    assert privacy == {"key_socket": "/run/sluice-keyd.sock", "key_rotate_seconds": 3600}, privacy
    socket_unit = (REPO / "packaging" / "systemd" / "sluice-keyd.socket").read_text()
    assert "ListenSequentialPacket=/run/sluice-keyd.sock" in socket_unit  # the path the writers are given
    cfg = config.loads(toml, "rendered")  # the supervisor takes it
    assert cfg.privacy.key_socket == "/run/sluice-keyd.sock" and not cfg.privacy.key_dir


def test_by_default_no_key_keeper(tmp_path: Path) -> None:
    conf, toml = _render(tmp_path / "plain", {})
    assert "sluice-keyd" not in conf and "privacy" not in tomllib.loads(toml)


def test_the_role_enables_the_socket_only_with_key_rotation() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    task = next(t for t in tasks if t.get("ansible.builtin.systemd", {}).get("name") == "sluice-keyd.socket")
    assert task["ansible.builtin.systemd"]["enabled"] == "{{ capture_node_key_rotation | bool }}"
    names = [t["name"] for t in tasks]
    assert names.index(task["name"]) < names.index("Enable the Sluice supervisor")
