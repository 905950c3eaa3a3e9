"""NIC watchdog: link, carrier changes, speed, rx counters and "SPAN dead" of each capture
interface, from /sys/class/net (the namespace's own when run under `ip netns exec`); plus
tuning drift through appliance.nic.check when that module is installed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
class TuningCheck:
    """Drift of capture interfaces from the capture profile, via appliance.nic (when present)."""

    profile_args: dict[str, Any]
    available: bool | None = None
    drift: dict[str, dict[str, bool]] = field(default_factory=dict)

    def _modules(self) -> tuple[Any, Any, Any] | None:
        try:
            from appliance.nic import check, profile, tune  # noqa: PLC0415 (optional module)
        except ImportError as exc:
            if self.available is not False:
                log.warning("NIC tuning unavailable (appliance.nic: %s): not tuning or checking drift", exc)
            self.available = False
            return None
        self.available = True
        return profile, tune, check

    def make_profile(self) -> Any | None:
        mods = self._modules()
        if mods is None:
            return None
        try:
            return mods[0].CaptureProfile(**self.profile_args)
        except Exception as exc:  # noqa: BLE001 (a foreign module: never let it stop capture)
            log.warning("NIC capture profile: %s", exc)
            return None

    def tune(self, interface: str) -> Any | None:
        profile = self.make_profile()
        if profile is None:
            return None
        mods = self._modules()
        assert mods is not None
        try:
            return mods[1].tune_interface(interface, profile)
        except Exception as exc:  # noqa: BLE001
            log.warning("NIC tuning of %s failed: %s", interface, exc)
            return None

    def check(self, interface: str) -> list[Any]:
        """The drifted settings of one interface ([] when none or when tuning is unavailable)."""
        profile = self.make_profile()
        if profile is None:
            return []
        mods = self._modules()
        assert mods is not None
        try:
            drifts = list(mods[2].check_interface(interface, profile))
        except Exception as exc:  # noqa: BLE001
            log.warning("NIC drift check of %s failed: %s", interface, exc)
            return []
        flags = self.drift.setdefault(interface, {})
        for key in flags:
            flags[key] = False
        for d in drifts:
            flags[str(getattr(d, "setting", d))] = True
        return drifts
