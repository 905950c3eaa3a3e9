"""What README.md's Tests section says of the tests holds: every peer or process a test or a bench
starts goes through its harness in appliance/lab/harness/, and a `time.sleep` outside a polling
loop says why it is there (a wait for something observable is a wait on it, not a sleep)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

SOURCES = sorted(p for p in [*(REPO / "tests").rglob("*.py"), *(REPO / "bench").glob("*.py")]
                 if p != Path(__file__).resolve())
HARNESS = REPO / "appliance" / "lab" / "harness"
# A live capture, a flood, a supervisor, a filesystem: each has its harness.
STARTS = {
    "tcpdump on an interface": re.compile(r'\["tcpdump", "-i"'),
    "dumpcap": re.compile(r'\["dumpcap"'),
    "netsniff-ng": re.compile(r'"netsniff-ng", "--in"'),
    "trafgen": re.compile(r'"trafgen", "--dev"'),
    "sluice supervise": re.compile(r'"appliance\.cli", "supervise"'),
    "a tmpfs or ramfs": re.compile(r'\["mount", "-t", "(tmpfs|ramfs)"'),
    "a loop filesystem": re.compile(r'\["mount", "-o", "loop"|"losetup", "--find"'),
}
# Not a harness's job: raw loop block devices for the storage guard to refuse and the LUKS script
# to format (tests/provisioning/conftest.py's loop_disks).
ALLOWED = {("tests/provisioning/conftest.py", "a loop filesystem")}


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_peers_and_processes_start_only_through_their_harness() -> None:
    found = [f"{relative(path)}: {what}" for path in SOURCES for what, pattern in STARTS.items()
             if pattern.search(path.read_text()) and (relative(path), what) not in ALLOWED]
    assert not found, f"start these through appliance/lab/harness/: {found}"
    # and the harness does start them (the patterns above are not stale)
    harness = "".join(p.read_text() for p in HARNESS.glob("*.py"))
    for name in ("tcpdump", "dumpcap", "netsniff-ng", "trafgen", "supervise", "tmpfs", "ramfs", "losetup"):
        assert f'"{name}"' in harness, name


def _polls(node: ast.AST) -> bool:
    """A `while` loop, or a `for` loop of attempts that breaks out once it sees what it waits for."""
    return isinstance(node, ast.While) or (
        isinstance(node, ast.For) and any(isinstance(n, ast.Break) for n in ast.walk(node)))


def _sleeps_outside_polling_loops(tree: ast.AST) -> list[int]:
    """Lines of time.sleep(...) calls that no polling loop encloses."""
    lines: list[int] = []

    def visit(node: ast.AST, in_loop: bool) -> None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sleep" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "time" and not in_loop:
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_loop or _polls(node))

    visit(tree, False)
    return lines


def _says_why(source: list[str], lineno: int) -> bool:
    """A comment on the line of the sleep or on the line just above it."""
    line, above = source[lineno - 1], source[lineno - 2].strip() if lineno >= 2 else ""
    return "#" in line.split("time.sleep", 1)[1] or above.startswith("#")


def test_every_sleep_outside_a_polling_loop_says_why() -> None:
    silent = []
    for path in SOURCES:
        text = path.read_text()
        source = text.splitlines()
        silent += [f"{relative(path)}:{n}" for n in _sleeps_outside_polling_loops(ast.parse(text))
                   if not _says_why(source, n)]
    assert not silent, f"wait on an event instead, or say why the time gap is the point: {silent}"


def test_the_checks_above_can_fail() -> None:
    tree = ast.parse("import time\ntime.sleep(1)\nwhile x:\n    time.sleep(0.1)\n# why\ntime.sleep(2)\n"
                     "for i in y:\n    time.sleep(3)\nfor i in y:\n    if i:\n        break\n    time.sleep(4)\n")
    source = ["import time", "time.sleep(1)", "while x:", "    time.sleep(0.1)", "# why", "time.sleep(2)"]
    assert _sleeps_outside_polling_loops(tree) == [2, 6, 8]
    assert [n for n in (2, 6) if not _says_why(source, n)] == [2]
    assert STARTS["tcpdump on an interface"].search('argv = ["tcpdump", "-i", "rx0"]')
