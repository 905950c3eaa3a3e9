"""`sluice nic check`: which settings of an interface differ from the capture profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.nic import irq
from appliance.nic.device import Device
from appliance.nic.profile import CaptureProfile, validate_profile
from appliance.nic.settings import Value, collect_settings


@dataclass(frozen=True)
class Drift:
    """One setting that is not as the profile wants (a driver reset or re-plug can do this)."""

    setting: str
    wanted: Value
    found: Value

    def to_dict(self) -> dict[str, Value]:
        return {"setting": self.setting, "wanted": self.wanted, "found": self.found}


def check_interface(ifname: str, profile: CaptureProfile, proc: Path = irq.PROC) -> list[Drift]:
    """The drifted settings of ifname (in the current network namespace); [] when tuned.

    Settings the driver cannot change are not drift: tune reports them as unsupported.
    """
    validate_profile(profile)
    with Device(ifname) as dev:
        plan = collect_settings(dev, profile, proc)
    return [Drift(s.name, s.wanted, s.found) for s in plan.settings if s.drifted]
