"""The playbook and roles pass ansible-lint (production profile) and Ansible's syntax check, and
every package a role installs is in the image's package list (so the chroot tests download
nothing and the image has what the roles expect)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.provisioning.chroot import PROVISIONING, ansible_env, have_tools, read_package_list

pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))


def test_ansible_lint_is_clean() -> None:
    result = subprocess.run(["ansible-lint", "--nocolor"], cwd=PROVISIONING, capture_output=True, text=True,
                            env=ansible_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed with production profile" in result.stdout + result.stderr


def test_site_playbook_syntax_with_the_example_inventory() -> None:
    result = subprocess.run(
        ["ansible-playbook", "--syntax-check", "-i", "inventory/hosts.yml", "site.yml"],
        cwd=PROVISIONING, capture_output=True, text=True, env=ansible_env(), timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_inventory_has_three_capture_boxes_with_disks_and_interfaces() -> None:
    result = subprocess.run(
        ["ansible-inventory", "-i", "inventory/hosts.yml", "--list"],
        cwd=PROVISIONING, capture_output=True, text=True, env=ansible_env(), timeout=120, check=True,
    )
    inventory = json.loads(result.stdout)
    boxes = inventory["capture"]["hosts"]
    assert len(boxes) == 3
    hostvars = inventory["_meta"]["hostvars"]
    for box in boxes:
        assert len(hostvars[box]["capture_storage_disks"]) >= 3
        assert hostvars[box]["capture_node_interfaces"]


def test_every_role_package_is_in_the_image_package_list() -> None:
    image_packages = set(read_package_list())
    for role in ("capture_storage", "capture_node"):
        defaults = yaml.safe_load((PROVISIONING / "roles" / role / "defaults" / "main.yml").read_text())
        wanted = set(defaults[f"{role}_packages"])
        assert wanted <= image_packages, f"{role} installs {sorted(wanted - image_packages)} not in image/packages.txt"
    assert "chrony" in image_packages
