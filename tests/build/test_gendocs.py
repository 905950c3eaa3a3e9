"""Man pages and bash completion are made from --help: each page, rendered by man, holds every
line of its program's and subcommands' --help, and completion offers what --help names."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, SLUICE_CAPTURE, SLUICE_PCAP, require_tool

SLUICE = REPO / ".venv" / "bin" / "sluice"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gendocs")
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "packaging" / "gendocs.py"), "--out", str(out),
                    "--version", "0.1.0", "--sluice", str(SLUICE), "--capture", str(SLUICE_CAPTURE),
                    "--pcap", str(SLUICE_PCAP)], check=True)
    return out


def helps(argv: list[str], *subs: list[str]) -> list[str]:
    texts = []
    for sub in [[], *subs]:
        proc = subprocess.run([*argv, *sub, "--help"], capture_output=True, text=True)
        texts.append(proc.stdout or proc.stderr)
    return texts


def rendered(page: Path) -> str:
    env = dict(os.environ, MANWIDTH="250", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="0")
    out = subprocess.run([require_tool("man"), "--no-hyphenation", "--no-justification", "-l", str(page)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


@pytest.mark.parametrize(("program", "argv", "subs"), [
    ("sluice", [str(SLUICE)], [["lab"], ["lab", "up"], ["nic", "tune"], ["config", "check"], ["supervise"]]),
    ("sluice-capture", [str(SLUICE_CAPTURE)], []),
    ("sluice-pcap", [str(SLUICE_PCAP)], [["dedup"], ["flows"], ["convert"]]),
])
def test_man_page_holds_every_line_of_help(generated: Path, program: str, argv: list[str],
                                           subs: list[list[str]]) -> None:
    page = rendered(generated / "man" / f"{program}.1")
    assert page.startswith(program.upper() + "(1)")
    for text in helps(argv, *subs):
        for line in text.splitlines():
            if line.strip():
                assert " ".join(line.split()) in page, f"{program} man page lacks: {line!r}"


def complete(generated: Path, program: str, *words: str) -> list[str]:
    script = (f'source {generated / "completion" / program}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              f'_{program.replace("-", "_")}; printf "%s\\n" "${{COMPREPLY[@]}}"')
    out = subprocess.run(["bash", "-c", script, "bash", program, *words], capture_output=True, text=True,
                         check=True).stdout
    return [w for w in out.splitlines() if w]


def test_completion_offers_subcommands_and_their_options(generated: Path) -> None:
    assert complete(generated, "sluice", "nic", "") == ["show", "tune", "check"]
    assert "--no-services" in complete(generated, "sluice", "-v", "lab", "up", "--")
    assert complete(generated, "sluice-pcap", "ded") == ["dedup"]
    assert complete(generated, "sluice-pcap", "dedup", "--window") == ["--window", "--window-packets"]
    assert complete(generated, "sluice-capture", "--rotate-") == ["--rotate-seconds", "--rotate-size"]
    # A file argument: nothing offered, so bash completes file names (complete -o default).
    assert complete(generated, "sluice-pcap", "dedup", "in.pcap", "") == []
    assert subprocess.run(["shellcheck", "-s", "bash", *(generated / "completion").iterdir()]).returncode == 0


def test_make_man_builds_the_pages() -> None:
    proc = subprocess.run(["make", "-C", str(REPO), "man"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for program in ("sluice", "sluice-capture", "sluice-pcap"):
        assert (REPO / "build" / "man" / f"{program}.1").stat().st_size > 200
        assert (REPO / "build" / "completion" / program).exists()
