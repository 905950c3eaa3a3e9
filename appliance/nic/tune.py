"""`sluice nic tune`: make an interface match the capture profile, then verify it does."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2.ethtool.ioctl import EthtoolError, NoSuchDevice

from appliance.errors import SluiceError
from appliance.nic import irq
from appliance.nic.device import Device, is_unsupported
from appliance.nic.profile import CaptureProfile, validate_profile
from appliance.nic.settings import FeatureRefused, Setting, Value, collect_settings


@dataclass(frozen=True)
class Change:
    setting: str
    before: Value
    after: Value


@dataclass(frozen=True)
class Unsupported:
    setting: str
    wanted: Value
    reason: str


@dataclass(frozen=True)
class Failure:
    """A setting the driver claims to support that did not take the wanted value."""

    setting: str
    wanted: Value
    found: Value
    error: str


@dataclass
class TuneReport:
    interface: str
    changed: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already as wanted
    unsupported: list[Unsupported] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    # The CPUs that serve the RX queues: where the writer's capture workers should run.
    worker_cpus: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": 1,
            "interface": self.interface,
            "ok": self.ok,
            "changed": [vars(c) for c in self.changed],
            "unchanged": list(self.unchanged),
            "unsupported": [vars(u) for u in self.unsupported],
            "failed": [vars(f) for f in self.failed],
            "worker_cpus": list(self.worker_cpus),
        }


def tune_interface(ifname: str, profile: CaptureProfile, proc: Path = irq.PROC,
                   force: bool = False) -> TuneReport:
    """Apply profile to ifname (in the current network namespace). Idempotent: a second run
    changes nothing. Raises SluiceError for a missing interface or missing privileges, and
    (unless force) for an interface that carries addresses in use: the profile turns off ARP
    and IPv6 and makes it promiscuous, which would cut the box off that link."""
    validate_profile(profile)
    report = TuneReport(interface=ifname)
    errors: dict[str, str] = {}
    refused: dict[str, str] = {}
    with Device(ifname) as dev:
        in_use = dev.addresses_in_use()
        if in_use and not force:
            raise SluiceError(f"{ifname} carries addresses in use ({', '.join(in_use[:3])}): tuning it for "
                              "capture (no ARP, no IPv6, promiscuous) would cut the box off that link; "
                              "refused (--force tunes it anyway)")
        before = after = collect_settings(dev, profile, proc)
        # A second pass, because some changes undo others: a ring or MTU change makes many
        # drivers reset the NIC, which can bring back their default coalescing or IRQ layout.
        for _ in range(2):
            todo = [s for s in after.settings if s.drifted and s.apply is not None
                    and s.name not in errors and s.name not in refused]
            if not todo:
                break
            for setting in todo:
                _apply(setting, errors, refused)
            after = collect_settings(dev, profile, proc)
    report.worker_cpus = after.worker_cpus
    was = {s.name: s for s in before.settings}
    for now in after.settings:
        old = was.get(now.name)
        if now.unsupported is not None:
            report.unsupported.append(Unsupported(now.name, now.wanted, now.unsupported))
        elif now.name in refused and now.drifted:
            report.unsupported.append(Unsupported(now.name, now.wanted, refused[now.name]))
        elif now.drifted:
            error = errors.get(now.name, "requested, but the kernel or driver kept the old value")
            report.failed.append(Failure(now.name, now.wanted, now.found, error))
        elif old is not None and old.drifted:
            report.changed.append(Change(now.name, old.found, now.found))
        else:
            report.unchanged.append(now.name)
    return report


def _apply(setting: Setting, errors: dict[str, str], refused: dict[str, str]) -> None:
    assert setting.apply is not None
    try:
        setting.apply()
    except FeatureRefused as exc:
        errors[setting.name] = str(exc)
    except NoSuchDevice:
        raise SluiceError(f"{setting.name}: the interface went away while tuning") from None
    except EthtoolError:  # pyroute2's ioctl answered EOPNOTSUPP: the whole operation is missing
        refused[setting.name] = "the driver does not support changing it"
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise SluiceError(f"changing {setting.name}: permission denied (needs root, "
                              "CAP_NET_ADMIN)") from None
        message = exc.strerror or str(exc)
        if is_unsupported(exc):
            refused[setting.name] = f"the driver refused it: {message}"
        else:
            errors[setting.name] = message
