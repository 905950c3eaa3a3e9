"""`sluice gaps --from T --to T`: the seconds that were not whole, per interface, with the cause."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from appliance.timespec import format_ns, parse

DEFAULT_CONFIG = "/etc/sluice/sluice.toml"


def _iso(ts: float) -> str:
    return format_ns(round(ts * 1e9))


def _cmd_gaps(args: argparse.Namespace) -> int:
    from appliance.errors import SluiceError
    from appliance.gaps import ledger

    start, end = parse(args.start, what="--from") / 1e9, parse(args.end, what="--to") / 1e9
    if end <= start:
        raise SluiceError(f"--to {args.end} is not after --from {args.start}")
    journal = Path(args.journal) if args.journal else None
    stats = [Path(p) for p in args.stats]
    if journal is None and not stats:
        # the campaign's ledger: kept in the catalog, brought up to date with what is new first
        from appliance.config import load
        from appliance.gaps import store

        cfg = load(args.config)
        store.refresh(cfg.spool, cfg.journal_path, stall_after=args.stall_after)
        found = store.query(cfg.spool, start, end, args.interface or None)
    else:
        found = ledger.ledger(start, end, journal, stats, args.interface or None, args.stall_after)
    if args.json:
        for g in found:
            print(json.dumps(ledger.to_json(g)))
        return 0
    if not found:
        print(f"whole from {_iso(start)} to {_iso(end)}")
        return 0
    print(f"{'FROM':<30}  {'TO':<30}  {'INTERFACE':<10}  {'CAUSE':<13}  LOST")
    for g in found:
        lost = "?" if g.lost is None else str(g.lost)
        print(f"{_iso(g.start):<30}  {_iso(g.end):<30}  {g.interface:<10}  {g.cause:<13}  {lost}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("gaps", help="the gap ledger: seconds that were not whole, per interface, and why",
                       description="Every second of [--from, --to) per interface is whole or lossy; this prints "
                                   "the lossy runs with their cause and the packets lost (? where none could "
                                   "count them). See docs/gaps.md.")
    p.add_argument("--from", dest="start", required=True, metavar="TIME", help="RFC 3339 (UTC unless a zone is given), "
                                                                              "unix seconds, now, or -15m")
    p.add_argument("--to", dest="end", required=True, metavar="TIME")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="read SPOOL/journal.jsonl and SPOOL/stats/*.jsonl "
                                                            f"(default {DEFAULT_CONFIG})")
    p.add_argument("--journal", help="a journal file (instead of the config's)")
    p.add_argument("--stats", action="append", default=[], metavar="FILE",
                   help="a file of sluice-capture stats lines (repeatable; instead of the config's)")
    p.add_argument("--interface", action="append", metavar="IF", help="only this interface (repeatable)")
    p.add_argument("--stall-after", type=float, default=3.0, metavar="SECONDS",
                   help="stats silent this long count as writer down (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per lossy run")
    p.set_defaults(func=_cmd_gaps)
