"""`sluice pipeline run --once`: thin over appliance.pipeline."""

from __future__ import annotations

import argparse
import csv
import logging
import signal
import sys
import threading
from pathlib import Path

from appliance import config as config_mod
from appliance import pipeline
from appliance.errors import SluiceError

log = logging.getLogger("sluice.pipeline")


def progress_bar(done: int, total: int, rel: str, step: str) -> None:
    """One line on the terminal, redrawn: [####....] done/total step file."""
    width = 30
    filled = width * done // total if total else width
    bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    line = f"{bar} {step} {Path(rel).name}" if rel else f"{bar} steps done\n"
    sys.stderr.write(f"\r\033[K{line}")
    sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    if args.once:
        result = pipeline.run_once(cfg, progress_bar if sys.stderr.isatty() else None)
        steps = ", ".join(f"{s} {result.done[s]} done, {result.failed[s]} failed" for s in pipeline.STEPS)
        print(f"pipeline: {result.files} file(s); {steps}")
        return 1 if any(result.failed.values()) else 0
    # The service: a pass, then another `interval` seconds after it ended, until SIGTERM/SIGINT
    # (the step under way finishes; a kill -9 is safe too, the next start resumes).
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signo, _frame: stop.set())
    log.info("pipeline: running, a pass every %gs after the last", cfg.pipeline.interval)
    while not stop.is_set():
        try:
            result = pipeline.run_once(cfg, stop=stop)
            if any(result.done.values()) or any(result.failed.values()):
                log.info("pipeline: %s", ", ".join(f"{s} {result.done[s]}/{result.failed[s]} failed"
                                                    for s in pipeline.STEPS))
        except SluiceError as exc:  # a target not mounted, another pass by hand: try again later
            log.warning("pipeline: %s", exc)
        stop.wait(cfg.pipeline.interval)
    log.info("pipeline: stopped")
    return 0


def _flows_query(args: argparse.Namespace) -> int:
    from appliance import flows_query

    if args.flows:
        root = Path(args.flows)
    else:
        cfg = config_mod.load(args.config)
        if not cfg.pipeline.processed:
            raise SluiceError(f"config {cfg.source}: [pipeline] processed is not set: no flows to query", 2)
        root = Path(cfg.pipeline.processed) / "flows"
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

    p = sub.add_parser("pipeline", help="the post-capture pipeline: backup, check, repair, dedup, flows, publish")
    psub = p.add_subparsers(dest="pipeline_command", metavar="ACTION")
    psub.required = True
    r = psub.add_parser("run", help="take every closed file through the steps not done yet")
    r.add_argument("--once", action="store_true",
                   help="one pass, then exit (a progress bar on a terminal); without it: run until SIGTERM")
    r.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    r.set_defaults(func=_run)
