"""NIC watchdogs: link, carrier changes, speed, rx counters and "SPAN dead" of each capture
interface, from /sys/class/net (the namespace's own when run under `ip netns exec`); and the
tuning drift of each one from the capture profile (appliance.nic), re-tuned when it drifted.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from appliance.journal import Journal
from appliance.nic.check import check_interface
from appliance.nic.profile import CaptureProfile, profile_from_mapping
from appliance.nic.tune import TuneReport, tune_interface
from appliance.watchdogs import Context, Family, Sample, Watchdog, register
from appliance.watchdogs.disk import human_seconds

log = logging.getLogger("sluice.nic")


@dataclass
class NicReading:
    interface: str
    present: bool
    link_up: bool = False
    carrier_changes: int = 0
    speed_bps: int = 0
    rx_packets: int = 0
    rx_missed: int = 0
    rx_dropped: int = 0
    span_dead: bool = False
    seconds_since_packet: float = 0.0


def _read_int(path: Path, default: int = 0) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


def _read_str(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class SpanWatch:
    """Remembers when each interface last received a packet, to tell a dead SPAN feed."""

    def __init__(self, dead_after: float) -> None:
        self.dead_after = dead_after
        self._seen: dict[str, tuple[int, float]] = {}

    def update(self, interface: str, rx_packets: int, link_up: bool, now: float) -> tuple[bool, float]:
        last = self._seen.get(interface)
        if last is None or rx_packets != last[0] or not link_up:
            self._seen[interface] = (rx_packets, now)
            return False, 0.0
        idle = now - last[1]
        return idle >= self.dead_after, idle


def read(interface: str, span: SpanWatch, sys_net: str = "/sys/class/net",
         now: float | None = None) -> NicReading:
    base = Path(sys_net) / interface
    if not base.is_dir():
        return NicReading(interface, present=False)
    operstate = _read_str(base / "operstate")
    carrier = _read_int(base / "carrier", 0)  # reading carrier of a down link fails: 0
    # veth and some drivers report "up"; "unknown" is used by drivers without operstate.
    link_up = carrier == 1 and operstate in ("up", "unknown")
    speed = _read_int(base / "speed", -1)
    stats = base / "statistics"
    reading = NicReading(
        interface=interface, present=True, link_up=link_up,
        carrier_changes=_read_int(base / "carrier_changes"),
        speed_bps=speed * 1_000_000 if speed > 0 else 0,
        rx_packets=_read_int(stats / "rx_packets"),
        rx_missed=_read_int(stats / "rx_missed_errors"),
        rx_dropped=_read_int(stats / "rx_dropped"),
    )
    reading.span_dead, reading.seconds_since_packet = span.update(
        interface, reading.rx_packets, link_up, time.monotonic() if now is None else now)
    return reading




@dataclass
class NicStatus:
    interfaces: list[NicReading]


@register
class NicWatchdog(Watchdog[NicStatus]):
    """Link, carrier, speed, receive counters and a dead SPAN feed of every capture interface."""

    name = "nic"
    reading_type = NicStatus
    families = (
        Family("sluice_nic_link_up", "gauge", "1 when the interface is up with carrier", ("interface",)),
        Family("sluice_nic_carrier_changes", "counter", "carrier changes seen by the kernel", ("interface",)),
        Family("sluice_nic_speed_bytes_per_second", "gauge",
               "link speed in bytes (base unit) per second (0 when unknown)",
               ("interface",)),
        Family("sluice_nic_rx_packets", "counter", "packets received by the NIC", ("interface",)),
        Family("sluice_nic_rx_missed", "counter", "packets the NIC missed (no buffer)", ("interface",)),
        Family("sluice_nic_rx_dropped", "counter", "packets dropped by the driver/stack", ("interface",)),
        Family("sluice_nic_span_dead", "gauge",
               "1 when the link is up but no packet arrived for the configured time", ("interface",)),
    )

    def __init__(self, cfg: Config) -> None:
        self.span = SpanWatch(cfg.watchdogs.span_dead_seconds)
        super().__init__(cfg)

    def reconfigure(self, cfg: Config) -> None:
        self.span.dead_after = cfg.watchdogs.span_dead_seconds

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval)

    def check(self, ctx: Context) -> NicStatus:
        return NicStatus([read(ifname, self.span, now=ctx.monotonic) for ifname in ctx.cfg.interfaces])

    @classmethod
    def samples(cls, reading: NicStatus) -> Iterable[Sample]:
        for n in reading.interfaces:
            i = (n.interface,)
            yield Sample("sluice_nic_link_up", i, 1.0 if n.link_up else 0.0)
            yield Sample("sluice_nic_carrier_changes", i, float(n.carrier_changes))
            yield Sample("sluice_nic_speed_bytes_per_second", i, n.speed_bps / 8)
            yield Sample("sluice_nic_rx_packets", i, float(n.rx_packets))
            yield Sample("sluice_nic_rx_missed", i, float(n.rx_missed))
            yield Sample("sluice_nic_rx_dropped", i, float(n.rx_dropped))
            yield Sample("sluice_nic_span_dead", i, 1.0 if n.span_dead else 0.0)

    @classmethod
    def describe(cls, reading: NicStatus) -> list[str]:
        lines = []
        for n in reading.interfaces:
            if not n.present:
                lines.append(f"nic: {n.interface} MISSING")
                continue
            lines.append(
                f"nic: {n.interface} link {'up' if n.link_up else 'DOWN'}, "
                f"speed {n.speed_bps // 1_000_000 if n.speed_bps else '?'} Mb/s, rx {n.rx_packets} packets, "
                f"missed {n.rx_missed}, dropped {n.rx_dropped}, carrier changes {n.carrier_changes}"
                + (f", SPAN DEAD (no packet for {human_seconds(n.seconds_since_packet)})" if n.span_dead else ""))
        return lines


def capture_profile(cfg: Config) -> CaptureProfile:
    """The capture profile the config's [nic] table asks for."""
    return profile_from_mapping(dataclasses.asdict(cfg.nic))


def tune(cfg: Config, interface: str, why: str, journal: Journal | None = None) -> TuneReport | None:
    """Tune one capture interface to the profile; journaled as nic_tuned. A failure is a warning
    (an interface with addresses in use is refused, never forced): capture goes on untuned."""
    try:
        report = tune_interface(interface, capture_profile(cfg))
    except Exception as exc:  # noqa: BLE001 (boundary: tuning never stops the capture)
        log.warning("NIC tuning of %s failed: %s", interface, exc)
        return None
    if journal is not None:
        journal.append("nic_tuned", interface=interface, why=why, report=report.to_dict())
    return report


@dataclass
class DriftReading:
    # interface -> setting -> drifted now (settings that drifted before stay listed, as 0)
    interfaces: dict[str, dict[str, bool]]


@register
class DriftWatchdog(Watchdog[DriftReading]):
    """Settings of the capture interfaces that differ from the capture profile (a driver reset or
    re-plug undoes tuning); re-tuned when [nic] reapply_on_drift. Only when [nic] tune is on:
    without tuning there is nothing to drift from."""

    name = "drift"
    reading_type = DriftReading
    families = (Family("sluice_nic_tuning_drift", "gauge", "1 when the setting differs from the capture profile",
                       ("interface", "setting")),)

    def __init__(self, cfg: Config) -> None:
        self._seen: dict[str, dict[str, bool]] = {}
        super().__init__(cfg)

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.nic.check_interval) if cfg.nic.tune else None

    def check(self, ctx: Context) -> DriftReading:
        profile = capture_profile(ctx.cfg)
        for ifname in ctx.cfg.interfaces:
            drifts = check_interface(ifname, profile)
            flags = self._seen.setdefault(ifname, {})
            for key in flags:
                flags[key] = False
            for d in drifts:
                flags[d.setting] = True
            if drifts and ctx.journal is not None:
                ctx.journal.append("nic_drift", interface=ifname,
                                   settings={d.setting: [str(d.wanted), str(d.found)] for d in drifts})
            if drifts and ctx.cfg.nic.reapply_on_drift:
                tune(ctx.cfg, ifname, "drift", ctx.journal)
        return DriftReading({i: dict(f) for i, f in self._seen.items() if i in ctx.cfg.interfaces})

    @classmethod
    def samples(cls, reading: DriftReading) -> Iterable[Sample]:
        for ifname, flags in sorted(reading.interfaces.items()):
            for setting, drifted in sorted(flags.items()):
                yield Sample("sluice_nic_tuning_drift", (ifname, setting), 1.0 if drifted else 0.0)

    @classmethod
    def describe(cls, reading: DriftReading) -> list[str]:
        return [f"nic: {ifname} tuning drift: {', '.join(k for k, v in flags.items() if v)}"
                for ifname, flags in sorted(reading.interfaces.items()) if any(flags.values())]
