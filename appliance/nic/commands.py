"""`sluice nic show|tune|check`: thin argparse over show.py, tune.py and check.py."""

from __future__ import annotations

import argparse
import dataclasses
import json

from appliance.errors import SluiceError
from appliance.nic import irq
from appliance.nic.check import check_interface
from appliance.nic.device import Device
from appliance.nic.profile import (
    FEATURE_ALIASES,
    PROFILES,
    CaptureProfile,
    feature_name,
    profile_by_name,
    profile_from_mapping,
    validate_profile,
)
from appliance.nic.settings import Value
from appliance.nic.show import format_state, read_state
from appliance.nic.tune import TuneReport, tune_interface


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nic", help="show, tune and check a capture interface (docs/nic.md)")
    nic = p.add_subparsers(dest="nic_command", metavar="ACTION")
    nic.required = True

    show = nic.add_parser("show", help="driver, link, offloads, rings, coalescing, IRQs, timestamping")
    show.add_argument("interface")
    show.add_argument("--json", action="store_true", help="the stable JSON document (docs/nic.md)")
    show.set_defaults(func=cmd_show)

    for name, func, text in (
        ("tune", cmd_tune, "apply the capture profile (idempotent); exit 1 if a setting did not take"),
        ("check", cmd_check, "exit 0 if the interface matches the profile, else 1 and each drift"),
    ):
        q = nic.add_parser(name, help=text)
        q.add_argument("interface")
        q.add_argument("--profile", default="capture", choices=sorted(PROFILES))
        q.add_argument("--config", metavar="FILE", help="take the [nic] settings of this sluice.toml")
        q.add_argument("--rx-usecs", type=int, help="fixed interrupt coalescing in microseconds")
        q.add_argument("--mtu", type=int, help="MTU to set (jumbo frames)")
        q.add_argument("--irq-cpus", metavar="LIST",
                       help="CPUs for the RX queue IRQs and capture workers: '1-3,5', or 'auto' "
                            "(every online CPU but CPU 0); default: leave IRQs as they are")
        q.add_argument("--feature-off", action="append", default=[], metavar="NAME",
                       help="also want this ethtool feature off (repeatable)")
        q.add_argument("--feature-on", action="append", default=[], metavar="NAME",
                       help="also want this ethtool feature on (repeatable)")
        q.add_argument("--json", action="store_true", help="machine-readable result")
        if name == "tune":
            q.add_argument("--force", action="store_true",
                           help="tune even an interface that carries addresses in use (loopback, IPv4, "
                                "IPv6 beyond link-local); without it such an interface is refused")
        q.set_defaults(func=func)


def profile_from_args(args: argparse.Namespace) -> CaptureProfile:
    """The profile the command line asks for: --profile, then --config's [nic], then flags."""
    profile = profile_by_name(args.profile)
    if args.config:
        from appliance.config import load

        profile = profile_from_mapping(load(args.config).sections["nic"], base=args.profile)
    changes: dict[str, object] = {}
    if args.rx_usecs is not None:
        changes["rx_usecs"] = args.rx_usecs
    if args.mtu is not None:
        changes["mtu"] = args.mtu
    if args.irq_cpus is not None:
        changes["irq_cpus"] = _cpu_arg(args.irq_cpus)
    if args.feature_off or args.feature_on:
        # A flag overrides the profile: --feature-on NAME takes NAME out of the "off" list.
        want_off = [feature_name(n) for n in args.feature_off]
        want_on = [feature_name(n) for n in args.feature_on]
        _check_feature_names(args.interface, [*args.feature_off, *args.feature_on])
        changes["features_off"] = tuple(dict.fromkeys(
            [n for n in profile.features_off if n not in want_on] + want_off))
        changes["features_on"] = tuple(dict.fromkeys(
            [n for n in profile.features_on if n not in want_off] + want_on))
    profile = dataclasses.replace(profile, **changes)  # type: ignore[arg-type]
    validate_profile(profile)
    return profile


def _check_feature_names(ifname: str, names: list[str]) -> None:
    """A feature the kernel does not know would be skipped silently at tune time: refuse it."""
    with Device(ifname) as dev:
        known = set(dev.features())
    for name in names:
        if feature_name(name) not in known:
            aliases = sorted(a for k, a in FEATURE_ALIASES.items() if k in known and a != k)
            raise SluiceError(f"--feature-off/--feature-on {name}: not a feature of this kernel (allowed: the "
                              f"names of `ethtool -k {ifname}` or the short names {', '.join(aliases)})")


def _cpu_arg(text: str) -> list[int]:
    if text == "auto":
        return irq.default_capture_cpus(irq.read_interrupts().cpus)
    try:
        cpus = irq.parse_cpu_list(text)
    except ValueError:
        cpus = []
    if not cpus:
        raise SluiceError(f"--irq-cpus: {text!r} is not a CPU list such as '1-3,5' or 'auto'")
    return cpus


def cmd_show(args: argparse.Namespace) -> int:
    state = read_state(args.interface)
    print(json.dumps(state, indent=2, sort_keys=True) if args.json else format_state(state))
    return 0


def _fmt(value: Value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "n/a" if value is None else str(value)


def format_report(report: TuneReport) -> str:
    lines = [f"{report.interface}: " + ("tuned" if report.ok else "NOT tuned")]
    for c in report.changed:
        lines.append(f"  changed      {c.setting}: {_fmt(c.before)} -> {_fmt(c.after)}")
    for u in report.unsupported:
        lines.append(f"  unsupported  {u.setting} (wanted {_fmt(u.wanted)}): {u.reason}")
    for f in report.failed:
        lines.append(f"  FAILED       {f.setting}: wanted {_fmt(f.wanted)}, found {_fmt(f.found)}: {f.error}")
    if report.unchanged:
        lines.append(f"  unchanged    {', '.join(report.unchanged)}")
    lines.append(f"  worker CPUs  {_fmt(report.worker_cpus) or 'not pinned (IRQs left as they are)'}")
    return "\n".join(lines)


def cmd_tune(args: argparse.Namespace) -> int:
    report = tune_interface(args.interface, profile_from_args(args), force=args.force)
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True) if args.json else format_report(report))
    return 0 if report.ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    drifts = check_interface(args.interface, profile_from_args(args))
    if args.json:
        print(json.dumps({"schema": 1, "interface": args.interface, "ok": not drifts,
                          "drift": [d.to_dict() for d in drifts]}, indent=2, sort_keys=True))
    elif drifts:
        print(f"{args.interface}: {len(drifts)} setting(s) drifted from the {args.profile} profile")
        for d in drifts:
            print(f"  {d.setting}: wanted {_fmt(d.wanted)}, found {_fmt(d.found)}")
    else:
        print(f"{args.interface}: as the {args.profile} profile wants")
    return 1 if drifts else 0
