"""SMART watchdog: overall health of each disk from `smartctl -j -H` (smartmontools >= 7)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.config import Config
from appliance.watchdogs import Context, Family, Sample, Watchdog, register


@dataclass
class SmartHealth:
    device: str
    healthy: bool | None  # None: smartctl could not tell (unsupported device, no permission)
    message: str = ""


def parse_health(doc: dict[str, Any], device: str = "") -> SmartHealth:
    """One `smartctl -j -H DEV` document -> health; exit_status bit 3 also means failing."""
    name = doc.get("device", {}).get("name") or device
    status = doc.get("smart_status")
    exit_status = int(doc.get("smartctl", {}).get("exit_status", 0) or 0)
    messages = [m.get("string", "") for m in doc.get("smartctl", {}).get("messages", []) if isinstance(m, dict)]
    if isinstance(status, dict) and "passed" in status:
        healthy = bool(status["passed"]) and not exit_status & 0x08
        return SmartHealth(name, healthy, "" if healthy else "SMART overall-health test failed")
    return SmartHealth(name, None, "; ".join(messages) or "no SMART status")


def parse_scan(doc: dict[str, Any]) -> list[str]:
    return [d["name"] for d in doc.get("devices", []) if isinstance(d, dict) and d.get("name")]


def _smartctl(args: list[str], timeout: float = 30) -> dict[str, Any] | None:
    exe = shutil.which("smartctl")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-j", *args], capture_output=True, text=True, timeout=timeout)
        doc = json.loads(proc.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError, OSError):
        return None
    return doc if isinstance(doc, dict) else None


def check(devices: list[str]) -> list[SmartHealth]:
    """Health of the given devices, or of every device `smartctl --scan` finds when none given."""
    if not devices:
        scan = _smartctl(["--scan"])
        devices = parse_scan(scan) if scan else []
    results = []
    for dev in devices:
        doc = _smartctl(["-H", dev])
        results.append(parse_health(doc, dev) if doc else SmartHealth(dev, None, "smartctl gave no JSON"))
    return results


@dataclass
class SmartReading:
    devices: list[SmartHealth]  # empty when smartctl is not installed


@register
class SmartWatchdog(Watchdog[SmartReading]):
    """Overall SMART health of the disks (`smartctl -H`)."""

    name = "smart"
    reading_type = SmartReading
    families = (Family("sluice_smart_healthy", "gauge", "1 when smartctl says the overall health test passed",
                       ("device",)),)

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.smart_interval) if cfg.watchdogs.smart else None

    def check(self, ctx: Context) -> SmartReading:
        if shutil.which("smartctl") is None:
            return SmartReading([])
        return SmartReading(check(ctx.cfg.watchdogs.smart_devices))

    @classmethod
    def samples(cls, reading: SmartReading) -> Iterable[Sample]:
        for d in reading.devices:
            if d.healthy is not None:
                yield Sample("sluice_smart_healthy", (d.device,), 1.0 if d.healthy else 0.0)

    @classmethod
    def describe(cls, reading: SmartReading) -> list[str]:
        return [f"smart: {d.device} {({True: 'healthy', False: 'FAILING', None: 'unknown'})[d.healthy]}"
                + (f" ({d.message})" if d.message else "") for d in reading.devices]
