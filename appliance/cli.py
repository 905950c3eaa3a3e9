"""The `sluice` command: argparse only; every subcommand calls a library function.

Each feature module registers its own subcommands with `register(subparsers)`, so adding a
command never means editing another feature's code: add the module to COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from appliance import __version__
from appliance.errors import SluiceError

COMMAND_MODULES = (
    "appliance.catalog_commands",
    "appliance.conns.commands",
    "appliance.gaps.commands",
    "appliance.lab.commands",
    "appliance.nic.commands",
    "appliance.notes.commands",
    "appliance.pipeline_commands",
    "appliance.run",
    "appliance.selftest.commands",
    "appliance.supervise_commands",
    "appliance.update",
)

# Commands whose module is imported alone when one of them is run, so they start without the
# others' imports (pyroute2 alone takes half a second): `sluice extract ... | tcpdump -r -`.
LIGHT_COMMANDS = {"catalog": "appliance.catalog_commands", "extract": "appliance.catalog_commands",
                  "pipeline": "appliance.pipeline_commands", "flows": "appliance.pipeline_commands"}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description="Sluice packet-capture appliance")
    parser.add_argument("--version", action="version", version=f"sluice {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    words = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")]
    light = LIGHT_COMMANDS.get(words[0]) if words else None
    for name in (light,) if light else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="sluice: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except SluiceError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sluice: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
