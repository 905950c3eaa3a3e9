"""The docs name only what exists: every `make TARGET` in the README and docs is a target of the
Makefile it names, and every repository path they name in backticks exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", REPO / "native" / "README.md", REPO / "monitoring" / "README.md",
        *sorted((REPO / "docs").glob("*.md"))]
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}
# Build products and places that exist only after a build or on a box.
GENERATED = ("native/build", "build/", "image/out", ".venv")


def targets(makefile_dir: Path) -> set[str]:
    db = subprocess.run(["make", "-C", str(makefile_dir), "-pRrq", ":"], capture_output=True, text=True).stdout
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.-]*):(?!=)", db, re.M)}


def make_commands(text: str) -> list[tuple[str | None, str]]:
    """`make X`, `make -C native X` -> (folder, target); variables (`SECONDS=60`) are skipped."""
    found = []
    for m in re.finditer(r"`make((?: [^`]+?)?)`", text):
        words = m.group(1).split()
        folder = None
        if words[:2] == ["-C", "native"]:
            folder, words = "native", words[2:]
        for word in words:
            if "=" not in word and not word.startswith("-"):
                found.append((folder, word))
                break
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_make_target_named_exists(doc: Path) -> None:
    known = {None: targets(REPO), "native": targets(REPO / "native")}
    folder_default = "native" if doc.parent.name == "native" else None
    missing = []
    for folder, target in make_commands(doc.read_text()):
        where = folder or folder_default
        if target not in known[where] and target not in known[None]:
            missing.append(f"make {target}" + (f" (in {where})" if where else ""))
    assert not missing, missing


PLACEHOLDER = re.compile(r"(?<![A-Za-z])(X|N|K|ID|IF|IFACE|BOX|SPOOL|NAME|DIR|FILE|HOST)(?![A-Za-z])")


def expand_braces(token: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", token)
    if not m:
        return [token]
    return [v for alt in m.group(1).split(",") for v in expand_braces(token[:m.start()] + alt + token[m.end():])]


def repo_paths(text: str, base: Path) -> list[str]:
    paths = []
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.rstrip(".,:;")
        first = token.split("/", 1)[0]
        if "/" not in token or token.startswith(("/", "~")) or PLACEHOLDER.search(token) or "<" in token:
            continue
        if token.startswith(GENERATED) or (base != REPO and token.startswith("build/")):
            continue
        if first in TOP or (base != REPO and (base / first).exists()):
            paths.append(token)
    return paths


def exists(path: str, base: Path) -> bool:
    return all(any(list(root.glob(p.rstrip("/"))) for root in (REPO, base)) for p in expand_braces(path))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_repository_path_named_exists(doc: Path) -> None:
    missing = [path for path in repo_paths(doc.read_text(), doc.parent) if not exists(path, doc.parent)]
    assert not missing, missing


def test_readme_names_no_path_outside_the_repository() -> None:
    text = (REPO / "README.md").read_text()
    assert "../" not in re.sub(r"```.*?```", "", text, flags=re.S)
    assert not (REPO / "tests" / "unit").exists() or "tests/unit" in text
