"""`sluice report --from T --to T -o DIR`: an HTML page of a capture window (docs/metadata.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "/etc/sluice/sluice.toml"


def _cmd_report(args: argparse.Namespace) -> int:
    from appliance.errors import SluiceError
    from appliance.timespec import parse

    start, end = parse(args.start, what="--from") / 1e9, parse(args.end, what="--to") / 1e9
    if end <= start:
        raise SluiceError(f"--to {args.end} is not after --from {args.start}", 2)
    if args.spool:
        spool = Path(args.spool)
        journal = spool / "journal.jsonl"
    else:
        from appliance.config import load

        cfg = load(args.config)
        spool, journal = cfg.spool, cfg.journal_path
    if not spool.is_dir():
        raise SluiceError(f"--spool {spool}: not a directory", 2)
    from appliance.report import data, render

    window = data.collect(spool, journal, start, end)
    print(render.write(window, Path(args.output)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="an HTML page with plots of a capture window (docs/metadata.md)")
    p.add_argument("--from", dest="start", required=True, metavar="TIME")
    p.add_argument("--to", dest="end", required=True, metavar="TIME")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="where index.html and its PNGs go")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--spool", help="a spool folder (instead of the config's)")
    p.set_defaults(func=_cmd_report)
