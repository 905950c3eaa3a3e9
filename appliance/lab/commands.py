"""`sluice lab up|down|status|flood|traffic`: the lab from the command line."""

from __future__ import annotations

import argparse
import json

from appliance.errors import SluiceError
from appliance.lab import netns, services, topology, traffic


def lab_up(lab_id: str | None = None, with_services: bool = True) -> topology.Lab:
    """Build a lab and start its servers; on any failure nothing is left behind."""
    lab = topology.build(lab_id)
    if with_services:
        try:
            services.start(lab)
        except BaseException:
            lab_down(lab.id)
            raise
    return lab


def lab_down(lab_id: str) -> list[str]:
    netns.require_root("sluice lab down")
    removed = topology.destroy(lab_id)
    services.stop_files(lab_id)
    if not removed:
        raise SluiceError(f"lab {lab_id} does not exist (already down?); `sluice lab status` lists labs")
    return removed


def _cmd_up(args: argparse.Namespace) -> int:
    lab = lab_up(args.id, with_services=not args.no_services)
    if args.json:
        print(json.dumps(lab.to_json(), indent=2))
    else:
        print("\n".join(topology.env_lines(lab)))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    ids = topology.existing_lab_ids() if args.all else [args.id]
    if args.all and not ids:
        return 0
    for lab_id in ids:
        if lab_id is None:
            raise SluiceError("sluice lab down: give a lab id or --all")
        lab_down(lab_id)
        print(f"lab {lab_id} removed")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    ids = topology.existing_lab_ids()
    rows = []
    for lab_id in ids:
        try:
            lab = topology.load(lab_id)
            up = topology.is_up(lab_id)
            stats = netns.link_stats(lab.capture_ns, lab.capture_if) if up else {}
        except SluiceError:
            lab, up, stats = None, False, {}
        rows.append({"id": lab_id, "up": up, "capture_ns": lab.capture_ns if lab else None,
                     "capture_if": lab.capture_if if lab else None, "span": stats})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no labs")
    for row in rows:
        state = "up" if row["up"] else "broken (run `sluice lab down ID`)"
        span = row["span"]
        seen = f"span rx {span['rx_packets']} packets {span['rx_bytes']} bytes" if span else ""
        print(f"{row['id']}: {state} {row['capture_ns'] or ''} {row['capture_if'] or ''} {seen}".rstrip())
    return 0


def _cmd_flood(args: argparse.Namespace) -> int:
    lab = topology.load(args.id)
    sent = traffic.flood(lab, args.src, args.dst, args.count, args.size, args.cpu)
    print(f"trafgen sent {sent} frames of {args.size} bytes {args.src}->{args.dst}")
    return 0


def _cmd_traffic(args: argparse.Namespace) -> int:
    lab = topology.load(args.id)
    done = traffic.mixed(lab, args.seconds)
    print(" ".join(f"{k}={v}" for k, v in done.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the lab: a switched network with a SPAN port, in namespaces")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    lab_sub.required = True

    up = lab_sub.add_parser("up", help="build a lab and start its servers")
    up.add_argument("--id", help="lab id (default: random); 1-12 lowercase letters or digits")
    up.add_argument("--json", action="store_true", help="print the lab as JSON")
    up.add_argument("--no-services", action="store_true", help="no HTTP/DNS/iperf3 servers")
    up.set_defaults(func=_cmd_up)

    down = lab_sub.add_parser("down", help="remove a lab, also one whose owner crashed")
    down.add_argument("id", nargs="?", help="lab id")
    down.add_argument("--all", action="store_true", help="remove every lab on this machine")
    down.set_defaults(func=_cmd_down)

    status = lab_sub.add_parser("status", help="list labs and what their SPAN port saw")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_status)

    flood = lab_sub.add_parser("flood", help="send frames at full speed with trafgen")
    flood.add_argument("id")
    flood.add_argument("--src", default="h1")
    flood.add_argument("--dst", default="h2")
    flood.add_argument("--count", type=int, default=100_000)
    flood.add_argument("--size", type=int, default=1442, help="frame size on the wire (60-1514)")
    flood.add_argument("--cpu", type=int, help="pin trafgen to this CPU")
    flood.set_defaults(func=_cmd_flood)

    tr = lab_sub.add_parser("traffic", help="HTTP, DNS, ping and iperf3 between the hosts")
    tr.add_argument("id")
    tr.add_argument("--seconds", type=float, default=10)
    tr.set_defaults(func=_cmd_traffic)
