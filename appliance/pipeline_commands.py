"""`sluice pipeline run --once`: thin over appliance.pipeline."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

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


def _flows_query(args: argparse.Namespace) -> int:
    from appliance import flows_query

    if args.flows:
        root = Path(args.flows)
    else:
        cfg = config_mod.load(args.config)
        if not cfg.get("pipeline", "processed"):
            raise SluiceError(f"config {cfg.source}: [pipeline] processed is not set: no flows to query", 2)
        root = Path(cfg.get("pipeline", "processed")) / "flows"
    columns, rows = flows_query.query(root, args.sql)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(columns)
    out.writerows(rows)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("flows", help="the pipeline's Parquet flows")
    fsub = f.add_subparsers(dest="flows_command", metavar="ACTION")
    fsub.required = True
    q = fsub.add_parser("query", help="SQL over table `flows` (DuckDB), CSV on stdout")
    q.add_argument("sql", metavar="SQL")
    q.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH,
                   help="the dataset is [pipeline] processed/flows of this config")
    q.add_argument("--flows", metavar="DIR", help="a flows dataset root instead (e.g. PUBLISH/flows, shared storage)")
    q.set_defaults(func=_flows_query)

    p = sub.add_parser("pipeline", help="the post-capture pipeline: backup, check (issue 15, first steps)")
    psub = p.add_subparsers(dest="pipeline_command", metavar="ACTION")
    psub.required = True
    r = psub.add_parser("run", help="take every closed file through the steps not done yet")
    r.add_argument("--once", action="store_true", help="one pass, then exit")
    r.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    r.set_defaults(func=_run)
