"""`sluice pipeline run --once`: thin over appliance.pipeline."""

from __future__ import annotations

import argparse

from appliance import config as config_mod
from appliance import pipeline
from appliance.errors import SluiceError


def _run(args: argparse.Namespace) -> int:
    if not args.once:
        raise SluiceError("only `sluice pipeline run --once` exists so far (one pass over every closed file)", 2)
    cfg = config_mod.load(args.config)
    result = pipeline.run_once(cfg)
    steps = ", ".join(f"{s} {result.done[s]} done, {result.failed[s]} failed" for s in pipeline.STEPS)
    print(f"pipeline: {result.files} file(s); {steps}")
    return 1 if any(result.failed.values()) else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="the post-capture pipeline: backup, check (issue 15, first steps)")
    psub = p.add_subparsers(dest="pipeline_command", metavar="ACTION")
    psub.required = True
    r = psub.add_parser("run", help="take every closed file through the steps not done yet")
    r.add_argument("--once", action="store_true", help="one pass, then exit")
    r.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    r.set_defaults(func=_run)
