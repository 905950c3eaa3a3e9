"""The top-level Makefile: lint covers every Python file and shell script, test-slow works
when no test is marked slow, and the licence is stated once."""

from __future__ import annotations

import subprocess
import tomllib

from tests.conftest import REPO


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(REPO), *args], capture_output=True, text=True, timeout=600)


def shell_scripts() -> set[str]:
    files = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    found = set()
    for name in files:
        path = REPO / name
        if name.endswith(".j2") or not path.is_file() or not path.stat().st_mode & 0o100:
            continue
        first = path.read_bytes().split(b"\n", 1)[0]
        if first.startswith(b"#!") and first.split(b"/")[-1].split()[-1] in (b"sh", b"bash", b"dash"):
            found.add(name)
    return found


def test_lint_covers_every_python_file_and_shell_script() -> None:
    plan = make("-n", "lint").stdout
    assert ".venv/bin/ruff check ." in plan
    shellcheck = next(line for line in plan.splitlines() if line.startswith("shellcheck"))
    linted = {word.removeprefix("./") for word in shellcheck.split()[2:]}
    scripts = shell_scripts()
    assert "image/build" in scripts and "scripts/install-deps" in scripts
    assert scripts <= linted, sorted(scripts - linted)


def test_lint_passes_and_make_test_runs_it() -> None:
    proc = make("lint")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plan = make("-n", "test").stdout
    assert plan.index("ruff check .") < plan.index("pytest")


def test_lint_fails_on_a_shell_warning(tmp_path) -> None:
    bad = REPO / "scripts" / "zz-lint-probe"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/\n")
    bad.chmod(0o755)
    try:
        proc = make("lint")
    finally:
        bad.unlink()
    assert proc.returncode != 0
    assert "zz-lint-probe" in proc.stdout + proc.stderr


def test_test_slow_passes_when_no_test_is_selected_and_fails_on_a_failure() -> None:
    none = make("test-slow", "PYTEST=.venv/bin/pytest -k no_test_has_this_name_zz")
    assert none.returncode == 0, none.stdout[-2000:] + none.stderr[-2000:]
    assert "no test is marked slow" in none.stdout
    failing = make("test-slow", "PYTEST=false")
    assert failing.returncode != 0


def test_one_version_for_python_c_and_the_package() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    changelog = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"sluice-appliance ({version})"), changelog
    capture = subprocess.run([str(REPO / "native" / "build" / "sluice-capture"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert capture.strip() == f"sluice-capture {version}"


def test_licence_file_and_pyproject_agree() -> None:
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]
