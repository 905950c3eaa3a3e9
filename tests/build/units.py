"""Sluice's systemd units as a box has them, and their sandbox against what a program really does:
strace -f output checked against a unit's SystemCallFilter=, RestrictAddressFamilies= and
MemoryDenyWriteExecute= (tests/build/test_unit_hardening.py, tests/catalog/test_pipeline_hardening.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.provisioning.chroot import run_playbook

PACKAGED = REPO / "packaging" / "systemd"
RENDER = REPO / "tests" / "provisioning" / "render_units.yml"
UNITS_DIR = Path("etc") / "systemd" / "system"

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace (deps/apt) is needed")


def render_unit_tree(root: Path) -> Path:
    """The package's units in ROOT/lib/systemd/system, the roles' units (their defaults) and
    sluice.service's site drop-in in ROOT/etc/systemd/system."""
    packaged = root / "lib" / "systemd" / "system"
    packaged.mkdir(parents=True)
    for unit in PACKAGED.glob("*.service"):
        shutil.copy(unit, packaged / unit.name)
    result = run_playbook(Path("/dev/null"), {"render_dir": str(root)}, playbook=RENDER)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return root


@cache
def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True,
                         check=True).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(names: list[str]) -> set[str]:
    calls: set[str] = set()
    for name in names:
        calls |= expand(syscall_groups()[name]) if name.startswith("@") else {name}
    return calls


def directive(unit_text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit_text.splitlines() if line.startswith(f"{key}=")]


def allowed_syscalls(unit_text: str) -> set[str]:
    """SystemCallFilter= as systemd reads it: the first line is an allow list, ~lines take away."""
    allowed: set[str] = set()
    for value in directive(unit_text, "SystemCallFilter"):
        if value.startswith("~"):
            allowed -= expand(value[1:].split())
        else:
            allowed |= expand(value.split())
    assert allowed, "no SystemCallFilter="
    return allowed


def traced(log: Path, start: str = "") -> tuple[set[str], set[str], list[str]]:
    """strace -f output -> (system calls made, socket families opened, W+X mappings), from the
    first line holding `start` on (a wrapper's own calls before it exec'd the program are not
    the program's)."""
    text = log.read_text()
    if start:
        assert start in text, text[:2000]
        text = text[text.rfind("\n", 0, text.index(start)) + 1:]
    calls = set(re.findall(r"^\d+ +(\w+)\(", text, re.M))
    families = set(re.findall(r"^\d+ +socket\((AF_\w+)", text, re.M))
    wx = [line for line in text.splitlines()
          if re.search(r"(mmap|mprotect)\(", line) and "PROT_WRITE" in line and "PROT_EXEC" in line]
    return calls, families, wx


def check_against_unit(unit_text: str, log: Path, start: str = "") -> None:
    calls, families, wx = traced(log, start)
    assert {"execve", "openat"} <= calls, sorted(calls)  # the trace saw the program at work
    denied = calls - allowed_syscalls(unit_text)
    assert not denied, sorted(denied)
    assert families <= set(directive(unit_text, "RestrictAddressFamilies")[0].split()), families
    if "MemoryDenyWriteExecute=yes" in unit_text.splitlines():
        assert not wx, wx[:5]
