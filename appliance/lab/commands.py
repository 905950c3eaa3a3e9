"""`sluice lab ...` subcommands (filled in by the lab module)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the lab: a switched network with a SPAN port in namespaces")
    p.set_defaults(func=lambda args: p.print_help())
