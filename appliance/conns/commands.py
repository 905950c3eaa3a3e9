"""`sluice conns` (live table or JSON Lines log) and `sluice conns join`."""

from __future__ import annotations

import argparse

from appliance.config import _listen
from appliance.errors import SluiceError

DEFAULT_METRICS = "127.0.0.1:9751"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
    return value


def _listen_arg(text: str) -> tuple[str, int] | None:
    if text in ("", "off"):
        return None
    try:
        return _listen(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not ADDRESS:PORT: {text!r}") from None


def _cmd_conns(args: argparse.Namespace) -> int:
    from appliance.conns import agent

    return agent.run(args.interval, args.log, args.duration, args.metrics, args.max_sockets, args.host)


def _cmd_join(args: argparse.Namespace) -> int:
    from appliance.conns import join

    summary = join.run(args.conns, args.flows, args.out, host=args.host, slack_s=args.slack)
    print(f"conns join: flows {summary['flows']}, with a process {summary['attributed']} "
          f"(src {summary['src']}, dst {summary['dst']}), written {summary['written']} file(s) under {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("conns", help="every TCP/UDP socket of this host with its process: live table or log",
                       description="Every TCP and UDP socket (IPv4, IPv6) of the network namespace this runs "
                                   "in, with state, addresses, bytes, retransmits and the owning process. "
                                   "Without --log: a live table. With --log: JSON Lines events "
                                   "(opened, state, closed). See docs/conns.md.")
    p.add_argument("--log", metavar="FILE", help="append JSON Lines events to FILE ('-' for stdout)")
    p.add_argument("--interval", type=_positive, default=1.0, metavar="SECONDS",
                   help="seconds between two dumps (default 1)")
    p.add_argument("--duration", type=_positive, metavar="SECONDS", help="stop after SECONDS (default: run)")
    p.add_argument("--metrics", type=_listen_arg, default=None, metavar="ADDRESS:PORT",
                   help=f"serve Prometheus /metrics there (the unit uses {DEFAULT_METRICS}; 'off' for none)")
    p.add_argument("--max-sockets", type=int, default=262144, metavar="N",
                   help="most sockets tracked at once (memory bound; default 262144)")
    p.add_argument("--host", help="host name written in events (default: this host's name)")
    p.set_defaults(func=_cmd_conns)
    jsub = p.add_subparsers(dest="conns_command", metavar="join")
    j = jsub.add_parser("join", help="add the process to each flow a logged socket explains, write Parquet",
                        description="Flows (sluice-pcap flows CSV or IPFIX, or Parquet flows) joined with conns "
                                    "logs: same 5-tuple, overlapping time. Writes OUT/host=H/date=D/*.parquet.")
    j.add_argument("--conns", action="append", required=True, metavar="LOG",
                   help="a `sluice conns --log` file (repeat for several hosts)")
    j.add_argument("--flows", action="append", required=True, metavar="FLOWS",
                   help="flows: CSV or IPFIX from sluice-pcap flows, or a Parquet file or folder (repeatable)")
    j.add_argument("-o", "--out", default="flows", metavar="DIR", help="the Parquet dataset root (default ./flows)")
    j.add_argument("--host", help="capture host for flows read from CSV/IPFIX (default: this host's name)")
    j.add_argument("--slack", type=_positive, default=2.0, metavar="SECONDS",
                   help="time allowed between a socket's life and its flow's packets (default 2)")
    j.set_defaults(func=_cmd_join)


__all__ = ["register", "SluiceError"]
