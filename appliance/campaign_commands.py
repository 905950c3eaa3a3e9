"""`sluice campaign commit|log`: the campaign's git history (appliance/campaign.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "/etc/sluice/sluice.toml"


def commit_config(config: str, message: str = "") -> str | None:
    """Commit the campaign of a config file (also what `sluice meta collect` calls after a pass)."""
    from appliance import campaign
    from appliance.config import find_capture_binary, load
    from appliance.errors import SluiceError

    cfg = load(config)
    try:
        capture = find_capture_binary(cfg)
    except SluiceError:
        capture = None
    maintenance = cfg.sections["meta"]["maintenance"]
    return campaign.commit(cfg.spool, Path(config), cfg.journal_path, Path(maintenance) if maintenance else None,
                           message, campaign.tool_versions(capture))


def _cmd_commit(args: argparse.Namespace) -> int:
    commit = commit_config(args.config, args.message)
    print(commit or "nothing changed")
    return 0


def _cmd_log(args: argparse.Namespace) -> int:
    from appliance import campaign
    from appliance.config import load
    from appliance.errors import SluiceError

    repo = campaign.repo_path(load(args.config).spool)
    if not (repo / ".git").is_dir():
        raise SluiceError(f"{repo}: no campaign history yet (`sluice campaign commit` starts it)", 2)
    print(campaign._git(repo, "log", "--stat", "--date=iso-strict", *(["-p"] if args.patch else [])).stdout,
          end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("campaign", help="the campaign's git history: config, journal, notes, metadata, tool "
                                        "versions (docs/metadata.md)")
    csub = p.add_subparsers(dest="campaign_command", required=True)
    c = csub.add_parser("commit", help="copy the campaign's files into SPOOL/campaign and commit what changed")
    c.add_argument("--config", default=DEFAULT_CONFIG)
    c.add_argument("-m", "--message", default="", help="the commit message (default: the files that changed)")
    c.set_defaults(func=_cmd_commit)
    g = csub.add_parser("log", help="the history (git log --stat)")
    g.add_argument("--config", default=DEFAULT_CONFIG)
    g.add_argument("-p", "--patch", action="store_true", help="with the changes")
    g.set_defaults(func=_cmd_log)
