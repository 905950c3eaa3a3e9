"""`sluice notes add TEXT` and `sluice notes list`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from appliance.timespec import format_ns, parse

DEFAULT_CONFIG = "/etc/sluice/sluice.toml"


def _iso(ts: float) -> str:
    return format_ns(round(ts * 1e9))


def journal_path(args: argparse.Namespace) -> Path:
    if args.journal:
        return Path(args.journal)
    from appliance.config import load

    return load(args.config).journal_path


def _cmd_add(args: argparse.Namespace) -> int:
    from appliance.notes import notes

    at = parse(args.at, what="--at") / 1e9 if args.at else None
    record = notes.add(journal_path(args), " ".join(args.text), at=at, who=args.author)
    print(f"note added at {_iso(record['ts'])}" + (f" about {_iso(record['at'])}" if "at" in record else ""))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from appliance.notes import notes

    start = parse(args.start, what="--from") / 1e9 if args.start else None
    end = parse(args.end, what="--to") / 1e9 if args.end else None
    for record in notes.notes(journal_path(args), start, end):
        if args.json:
            print(json.dumps(record, ensure_ascii=False))
        else:
            when = record.get("at", record["ts"])
            print(f"{_iso(when)}  {record.get('author', '?')}: {record['text']}")
    return 0


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"the journal is the config's spool/journal.jsonl "
                                                            f"(default {DEFAULT_CONFIG})")
    p.add_argument("--journal", help="the journal file itself (instead of --config)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("notes", help="timestamped notes in the capture journal")
    nsub = p.add_subparsers(dest="notes_command", metavar="add|list")
    nsub.required = True
    a = nsub.add_parser("add", help="append a note to the journal")
    a.add_argument("text", nargs="+", help="the note")
    a.add_argument("--at", metavar="TIME",
                   help="the time the note is about (RFC 3339, unix seconds, -10m; default now)")
    a.add_argument("--author", help="who writes it (default: the user, or the one behind sudo)")
    _where(a)
    a.set_defaults(func=_cmd_add)
    ls = nsub.add_parser("list", help="the notes of the journal")
    ls.add_argument("--from", dest="start", metavar="TIME")
    ls.add_argument("--to", dest="end", metavar="TIME")
    ls.add_argument("--json", action="store_true")
    _where(ls)
    ls.set_defaults(func=_cmd_list)
