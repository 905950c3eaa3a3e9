"""Man pages and bash completion for sluice, sluice-capture and sluice-pcap, made from the
programs' own --help output (so neither can say something --help does not).

    python3 packaging/gendocs.py --out DIR --sluice CMD --capture BIN --pcap BIN

writes DIR/man/PROG.1 and DIR/completion/PROG. Every (sub)command's --help text goes into the
page verbatim; the completion offers each level's subcommands and the options its help names.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY = {
    "sluice": "the Sluice packet-capture appliance: supervisor, NIC tuning, lab, config, status",
    "sluice-capture": "write every packet of an interface to pcapng or pcap files",
    "sluice-pcap": "inspect, check, repair, de-duplicate, merge, anonymise and convert captures",
    "sluice-keyd": "keep the anonymisation keys of sluice-capture --key-socket, as root",
}
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


@dataclass
class Command:
    words: list[str]  # ["sluice", "nic", "show"]
    help: str
    subcommands: list[Command] = field(default_factory=list)

    @property
    def options(self) -> list[str]:
        return sorted({o for o in OPTION.findall(self.help) if o not in ("-", "--")})


def help_text(argv: list[str]) -> str:
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    text = proc.stdout or proc.stderr
    if proc.returncode != 0 or not text.strip():
        sys.exit(f"gendocs: {' '.join(argv)} --help failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return text


def argparse_subcommands(text: str) -> list[str]:
    """Subcommands of an argparse help: the {a,b} choices, or the entries under COMMAND."""
    choices = re.search(r"^positional arguments:\n  \{([\w,-]+)\}", text, re.M)
    if choices:
        return choices.group(1).split(",")
    section = re.search(r"^positional arguments:\n\s+[A-Z]+\n((?:    .*\n?)+)", text, re.M)
    if not section:
        return []
    return [m.group(1) for m in re.finditer(r"^    ([a-z][\w-]*)", section.group(1), re.M)]


def walk_argparse(argv: list[str], names: list[str]) -> Command:
    text = help_text(argv)
    cmd = Command(names, text)
    for sub in argparse_subcommands(text):
        cmd.subcommands.append(walk_argparse([*argv, sub], [*names, sub]))
    return cmd


def walk_pcap(binary: str) -> Command:
    text = help_text([binary])
    cmd = Command(["sluice-pcap"], text)
    for sub in dict.fromkeys(re.findall(r"^\s+sluice-pcap ([a-z]+) ", text, re.M)):
        cmd.subcommands.append(Command(["sluice-pcap", sub], help_text([binary, sub])))
    return cmd


def roff_escape(line: str) -> str:
    line = line.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + line if line.startswith((".", "'")) else line


def manpage(cmd: Command, version: str, date: str) -> str:
    name = cmd.words[0]
    out = [f'.TH {name.upper()} 1 "{date}" "sluice {version}" "Sluice"',
           ".SH NAME", f"{roff_escape(name)} \\- {roff_escape(SUMMARY[name])}",
           ".SH SYNOPSIS AND OPTIONS", "The text of", f".B {roff_escape(name)} \\-\\-help\\fR:", ".PP", ".nf"]
    out += [roff_escape(line) for line in cmd.help.rstrip("\n").splitlines()]
    out.append(".fi")

    def section(sub: Command) -> None:
        out.extend([f'.SS "{roff_escape(" ".join(sub.words))}"', ".nf"])
        out.extend(roff_escape(line) for line in sub.help.rstrip("\n").splitlines())
        out.append(".fi")
        for deeper in sub.subcommands:
            section(deeper)

    if cmd.subcommands:
        out.append(".SH COMMANDS")
        for sub in cmd.subcommands:
            section(sub)
    others = [f".BR {n} (1)" for n in SUMMARY if n != name]
    out += [".SH SEE ALSO", *others, ".PP", "/usr/share/doc/sluice\\-appliance/ (README, docs, example config)."]
    return "\n".join(out) + "\n"


def completion(cmd: Command) -> str:
    """A bash completion function: at each level, its subcommands, or the options its help names
    when the word starts with '-'; otherwise bash's own (file names)."""
    subs: dict[str, list[str]] = {}
    opts: dict[str, list[str]] = {}

    def fill(c: Command) -> None:
        key = " ".join(c.words)
        subs[key] = [s.words[-1] for s in c.subcommands]
        opts[key] = c.options
        for s in c.subcommands:
            fill(s)

    fill(cmd)

    def table(d: dict[str, list[str]]) -> str:
        return " ".join(f"[{shlex.quote(k)}]={shlex.quote(' '.join(v))}" for k, v in d.items())

    prog = cmd.words[0]
    func = "_" + prog.replace("-", "_")
    lines = [f"# bash completion for {prog}: generated from its --help by packaging/gendocs.py",
             f"{func}() {{",
             f"    local cur=${{COMP_WORDS[COMP_CWORD]}} path={prog} w i",
             f"    local -A subs=({table(subs)})",
             f"    local -A opts=({table(opts)})",
             "    for ((i = 1; i < COMP_CWORD; i++)); do",
             "        w=${COMP_WORDS[i]}",
             '        if [[ $w != -* && " ${subs[$path]} " == *" $w "* ]]; then path="$path $w"; fi',
             "    done",
             '    if [[ $cur == -* ]]; then',
             '        mapfile -t COMPREPLY < <(compgen -W "${opts[$path]}" -- "$cur")',
             '    elif [[ -n ${subs[$path]} ]]; then',
             '        mapfile -t COMPREPLY < <(compgen -W "${subs[$path]}" -- "$cur")',
             "    fi",
             "}",
             f"complete -o default -F {func} {prog}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sluice", required=True, help="the sluice command (a path, or 'python3 -m appliance.cli')")
    ap.add_argument("--capture", required=True)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--keyd", help="sluice-keyd (default: beside --capture)")
    ap.add_argument("--version", required=True)
    args = ap.parse_args()
    date = time.strftime("%Y-%m-%d", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))))
    commands = [walk_argparse(shlex.split(args.sluice), ["sluice"]),
                Command(["sluice-capture"], help_text([args.capture])),
                walk_pcap(args.pcap),
                Command(["sluice-keyd"], help_text([args.keyd or str(Path(args.capture).with_name("sluice-keyd"))]))]
    (args.out / "man").mkdir(parents=True, exist_ok=True)
    (args.out / "completion").mkdir(parents=True, exist_ok=True)
    for cmd in commands:
        (args.out / "man" / f"{cmd.words[0]}.1").write_text(manpage(cmd, args.version, date))
        (args.out / "completion" / cmd.words[0]).write_text(completion(cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
