"""The `sluice` command: argparse only; every subcommand calls a library function.

Each feature module registers its own subcommands with `register(subparsers)`, so adding a
command never means editing another feature's code: add the module to COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from appliance import __version__
from appliance.errors import SluiceError

# Exit status when the reader of our output went away (`sluice ... | head`): what a program
# killed by SIGPIPE reports to the shell, without a traceback or a line on stderr.
EXIT_BROKEN_PIPE = 128 + 13

COMMAND_MODULES = (
    "appliance.campaign_commands",
    "appliance.catalog_commands",
    "appliance.conns.commands",
    "appliance.gaps.commands",
    "appliance.lab.commands",
    "appliance.merge_commands",
    "appliance.meta.commands",
    "appliance.nic.commands",
    "appliance.notes.commands",
    "appliance.pipeline_commands",
    "appliance.report.commands",
    "appliance.run",
    "appliance.selftest.commands",
    "appliance.supervise_commands",
    "appliance.update",
)

# Commands whose module is imported alone when one of them is run, so they start without the
# others' imports (pyroute2 alone takes half a second): `sluice extract ... | tcpdump -r -`.
LIGHT_COMMANDS = {"catalog": "appliance.catalog_commands", "extract": "appliance.catalog_commands",
                  "pipeline": "appliance.pipeline_commands", "flows": "appliance.pipeline_commands",
                  "merge": "appliance.merge_commands"}


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
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if getattr(args, "logs", True):  # a command that logs nothing starts without the logging package
            from appliance import logs

            logs.setup(verbose=args.verbose)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a pipe closed early shows here at the latest, inside the handler
        return code
    except SluiceError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("sluice: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse's --help/--version/usage errors
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _quiet_broken_pipe()
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def _quiet_broken_pipe() -> int:
    """The reader closed the pipe: nobody wants the rest. Point stdout at /dev/null so the
    interpreter's final flush at exit cannot fail again, and exit as SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
