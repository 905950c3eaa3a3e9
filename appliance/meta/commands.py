"""`sluice meta collect`: one pass over the metadata sources of the config's [meta] section."""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "/etc/sluice/sluice.toml"


def _cmd_collect(args: argparse.Namespace) -> int:
    from appliance.config import load
    from appliance.meta.collect import collect

    cfg = load(args.config)
    outcomes = collect(cfg.sections["meta"], cfg.spool, cfg.journal_path, cfg.host)
    for o in outcomes:
        if o.ok:
            print(f"{o.source:<20} {o.kind:<12} ok{' changed' if o.changed else ''}  {o.path or '(unchanged)'}")
        else:
            print(f"{o.source:<20} {o.kind:<12} FAILED after {o.attempts} attempt(s): {o.error}")
    if not args.no_commit:  # every change of the metadata is a commit of the campaign's history
        from appliance.campaign_commands import commit_config

        commit_config(args.config, "meta collect: " + ", ".join(
            f"{o.source} {'ok' if o.ok else 'failed'}{' changed' if o.changed else ''}" for o in outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("meta", help="metadata beside the packets (DNS zones, DHCP leases, device configs, "
                                    "maintenance windows); see docs/metadata.md")
    msub = p.add_subparsers(dest="meta_command", required=True)
    c = msub.add_parser("collect", help="one pass over every [meta] source: store, catalogue, journal")
    c.add_argument("--config", default=DEFAULT_CONFIG)
    c.add_argument("--no-commit", action="store_true", help="do not commit the campaign's history afterwards")
    c.set_defaults(func=_cmd_collect)
