"""`sluice merge -o OUT --journal J... FILE...`: thin over appliance.merge."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_merge(args: argparse.Namespace) -> int:
    from appliance import merge

    result = merge.merge([Path(f) for f in args.files], [Path(j) for j in args.journal], args.output)
    if args.json:
        print(json.dumps(merge.to_json(result)))
    else:
        for line in merge.describe(result):
            print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("merge", help="merge the captures of several boxes by time, each corrected by its clock",
                       description="Each file's box is the host in its name; its timestamps are shifted by minus "
                                   "that box's clock offset at the time (the `clock` events of the box's journal), "
                                   "and the merge says how far apart packets of two boxes must be for their order "
                                   "to be sure. See docs/pipeline.md.")
    p.add_argument("-o", "--output", required=True, help="the merged file (pcap, or pcapng for mixed link types)")
    p.add_argument("--journal", action="append", required=True, metavar="JOURNAL",
                   help="a box's SPOOL/journal.jsonl (once per box)")
    p.add_argument("--json", action="store_true", help="one JSON object: each file's shift and uncertainty")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_merge)
