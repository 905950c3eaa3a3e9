"""`sluice catalog ls|rebuild` and `sluice extract`: thin over appliance.catalog and .extract."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from appliance import DEFAULT_CONFIG_PATH, catalog, extract, timespec
from appliance.errors import SluiceError


def _spool(args: argparse.Namespace) -> Path:
    if args.spool:
        spool = Path(args.spool)
    elif args.config or os.path.exists(DEFAULT_CONFIG_PATH):
        from appliance import config as config_mod  # only here: extract starts faster without it

        spool = config_mod.load(args.config or DEFAULT_CONFIG_PATH).spool
    else:
        raise SluiceError(f"no spool: give --spool DIR or --config FILE ({DEFAULT_CONFIG_PATH} "
                          "does not exist)", 2)
    if not spool.is_dir():
        raise SluiceError(f"spool {spool}: no such directory", 2)
    return spool


def _window(args: argparse.Namespace, need_from: bool) -> tuple[int | None, int | None]:
    now = timespec.parse("now")
    from_ns = timespec.parse(args.from_, now, "--from") if args.from_ else None
    to_ns = timespec.parse(args.to, now, "--to") if args.to else (now if need_from else None)
    if need_from and from_ns is None:
        raise SluiceError("--from is required (e.g. --from -15m, --from 2026-11-29T10:02:00Z)", 2)
    return from_ns, to_ns


def _ls(args: argparse.Namespace) -> int:
    spool = _spool(args)
    from_ns, to_ns = _window(args, need_from=False)
    db = catalog.connect(spool, readonly=True)
    try:
        found = [catalog.row_dict(r) for r in catalog.rows(db, from_ns, to_ns, args.interface)]
    finally:
        db.close()
    if args.json:
        json.dump(found, sys.stdout, indent=1)
        print()
        return 0
    try:
        print(f"{'first':31} {'last':31} {'interface':10} {'packets':>10} {'size':>12} {'state':8} path")
        for r in found:
            print(f"{timespec.format_ns(r['first_ns']):31} {timespec.format_ns(r['last_ns']):31} "
                  f"{r['interface']:10} {r['packets']:>10} {r['size']:>12} {r['state']:8} {r['path']}")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    spool = _spool(args)
    result = catalog.rebuild(spool)
    print(f"catalog {catalog.catalog_path(spool)}: {result.files} file(s), {result.reindexed} indexed again, "
          f"{result.seconds:.2f} s")
    return 0


def _extract(args: argparse.Namespace) -> int:
    spool = _spool(args)
    from_ns, to_ns = _window(args, need_from=True)
    assert from_ns is not None and to_ns is not None
    if args.output is None:
        raise SluiceError("-o OUT is required (-o - writes to stdout, e.g. | tcpdump -r -)", 2)
    q = extract.Query(from_ns, to_ns, args.filter, args.interface or [], args.output, args.format)
    try:
        result = extract.run(spool, q)
    except (SluiceError, BrokenPipeError) as exc:
        if catalog.catalog_path(spool).exists():
            extract.journal(spool, q, None, exc.strerror if isinstance(exc, BrokenPipeError) else str(exc))
        raise
    extract.journal(spool, q, result, None)
    print(f"sluice extract: {result.packets} packet(s) from {len(result.files)} file(s) and {len(result.parts)} "
          f"open file(s) ({result.picked} read only where the filter's addresses are), "
          f"{result.skipped_by_index} file(s) of the window ruled out by the index, "
          f"{result.seconds:.2f} s -> {'stdout' if q.output == '-' else q.output}", file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    # `--from -15m` is a value, not an option: argparse takes "-15m" for a value only when it
    # looks like a negative number, so widen what looks like one (no option of ours does).
    p._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[a-z]*$")  # noqa: SLF001
    p.add_argument("--spool", help="the spool directory (default: the config's)")
    p.add_argument("--config", help=f"read the spool from this config (default {DEFAULT_CONFIG_PATH})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="the spool's catalog of capture files (SPOOL/catalog.sqlite)")
    csub = p.add_subparsers(dest="catalog_command", metavar="ACTION")
    csub.required = True
    ls = csub.add_parser("ls", help="list files with their times and states")
    _common(ls)
    ls.add_argument("--from", dest="from_", metavar="T", help=f"files with packets at or after T ({timespec.HELP})")
    ls.add_argument("--to", metavar="T", help="files with packets before T")
    ls.add_argument("--interface", action="append", metavar="IF", help="only this interface (repeatable)")
    ls.add_argument("--json", action="store_true", help="one JSON list of rows")
    ls.set_defaults(func=_ls)
    rb = csub.add_parser("rebuild", help="rebuild the catalog from the files (and the journal)")
    _common(rb)
    rb.set_defaults(func=_rebuild)

    ex = sub.add_parser("extract", help="the packets of a time window (and a tcpdump filter) as one capture")
    _common(ex)
    ex.add_argument("--from", dest="from_", metavar="T", help=f"start, inclusive ({timespec.HELP})")
    ex.add_argument("--to", metavar="T", help="end, exclusive (default: now)")
    ex.add_argument("--filter", metavar="BPF", help="a tcpdump filter expression")
    ex.add_argument("--interface", action="append", metavar="IF", help="only this capture interface (repeatable)")
    ex.add_argument("-o", "--output", default=None, metavar="OUT", help="output file, or - for stdout")
    ex.add_argument("--format", default="pcapng", choices=("pcapng", "pcap"),
                    help="pcapng (default) or pcap, both with ns timestamps")
    # extract logs nothing (errors are SluiceErrors, the journal reports its own): no logging import
    ex.set_defaults(func=_extract, logs=False)
