"""`sluice run`: the main job behind `make run`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="lab + appliance on its SPAN port, live status, summary")
    p.add_argument("--seconds", type=int, default=60)
    p.set_defaults(func=lambda args: 0)
