"""`sluice config check|show`, `sluice supervise`, `sluice status`: thin over the library."""

from __future__ import annotations

import argparse
import json
import sys

from appliance import config as config_mod
from appliance import status as status_mod


def _config_check(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.file)
    config_mod.check_on_this_machine(cfg)
    print(f"{args.file}: ok ({len(cfg.interfaces)} interface(s), spool {cfg.spool})")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    sys.stdout.write(config_mod.dumps(config_mod.load(args.config)))
    return 0


def _config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(config_mod.example())
    return 0


def _supervise(args: argparse.Namespace) -> int:
    from appliance.supervisor import supervise  # the loop pulls in prometheus-client

    return supervise(args.config)


def _status(args: argparse.Namespace) -> int:
    path = args.state or config_mod.load(args.config).state_path
    state = status_mod.load_state(path)
    if args.json:
        print(json.dumps(state, indent=1))
    else:
        print(status_mod.format_status(state))
    # Like a monitoring plug-in: a status nobody rewrites any more is a failed check.
    return 1 if status_mod.is_stale(state) else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check or show the appliance config (TOML)")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    c = csub.add_parser("check", help="validate a config file: exit 0, or one line naming the key and exit 2")
    c.add_argument("file", nargs="?", default=config_mod.DEFAULT_CONFIG_PATH)
    c.set_defaults(func=_config_check)
    s = csub.add_parser("show", help="print the effective config with every default filled in")
    s.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    s.set_defaults(func=_config_show)
    e = csub.add_parser("example", help="print an example config: every key with its default and what it allows")
    e.set_defaults(func=_config_example)

    sv = sub.add_parser("supervise", help="run the writers, watchdogs, retention and /metrics")
    sv.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    sv.set_defaults(func=_supervise)

    st = sub.add_parser("status", help="a human-readable snapshot of the box (from the supervisor's status.json)")
    st.add_argument("--config", default=config_mod.DEFAULT_CONFIG_PATH)
    st.add_argument("--state", help="read this status.json instead of SPOOL/status.json")
    st.add_argument("--json", action="store_true", help="print the raw status document")
    st.set_defaults(func=_status)
