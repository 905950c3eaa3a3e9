"""`sluice selftest`: thin over appliance.selftest.run (docs/capacity.md)."""

from __future__ import annotations

import argparse
import json
import sys

from appliance import config as config_mod
from appliance.errors import SluiceError


def _selftest(args: argparse.Namespace) -> int:
    from appliance.selftest import report
    from appliance.selftest.run import Options, parse_cpus, parse_rate, parse_sizes, record, run_selftest

    if args.seconds <= 0 or args.seconds > 600:
        raise SluiceError(f"--seconds {args.seconds:g} is not allowed (allowed: 0 < seconds <= 600)", 2)
    if args.disk_seconds <= 0 or args.disk_seconds > 600:
        raise SluiceError(f"--disk-seconds {args.disk_seconds:g} is not allowed (allowed: 0 < seconds <= 600)", 2)
    if args.steps < 1 or args.refine < 0:
        raise SluiceError("--steps must be >= 1 and --refine >= 0", 2)
    opts = Options(interfaces=args.interface or [], seconds=args.seconds, disk_seconds=args.disk_seconds,
                   sizes=parse_sizes(args.sizes),
                   steps=args.steps, refine=args.refine,
                   link_speed=parse_rate(args.link_speed) if args.link_speed else None, force=args.force,
                   generator_cpus=parse_cpus(args.generator_cpus))
    cfg = config_mod.load(args.config)
    quiet = args.json

    def progress(text: str) -> None:
        if not quiet:
            print(f"selftest: {text}", file=sys.stderr, flush=True)

    result = run_selftest(cfg, opts, progress)
    record(cfg, result)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(report.format_table(result))
    return 0 if result["keeps_up"] else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selftest", help="measure this box's lossless capture ceiling against its links "
                                        "(exit 1 when it cannot keep up)")
    p.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    p.add_argument("--interface", action="append", metavar="IF",
                   help="judge against this link (repeatable; default: every configured capture interface)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each step (default 3)")
    p.add_argument("--disk-seconds", type=float, default=3.0,
                   help="length of the spool's write test (default 3; at most 4 GiB are written)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    p.add_argument("--force", action="store_true", help="run even while the supervisor is capturing")
    p.add_argument("--sizes", default="64,1518", help="frame sizes with FCS, 64..1518 (default 64,1518)")
    p.add_argument("--steps", type=int, default=5,
                   help="after a lossy full-speed run, climb in STEPS equal steps of that rate (default 5)")
    p.add_argument("--refine", type=int, default=2, help="bisections after the first loss (default 2)")
    p.add_argument("--link-speed", metavar="RATE",
                   help="judge against this speed (e.g. 10G) instead of what the interfaces report")
    p.add_argument("--generator-cpus", default="0", metavar="LIST",
                   help="CPUs for trafgen, one sending process each (default 0; e.g. 0-3; empty: one, unpinned)")
    p.set_defaults(func=_selftest)
