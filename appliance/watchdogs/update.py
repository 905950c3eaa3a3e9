"""Update watchdog: the running release and root slot, a pending update, how updates ended
(appliance/update.py keeps that state on the data partition)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance import update
from appliance.config import Config
from appliance.watchdogs import Context, Family, Sample, Watchdog, register


@dataclass
class UpdateReading:
    version: str
    commit: str
    slot: str  # the root slot GRUB booted ("none" outside the image)
    pending: bool  # an installed update has not yet proved itself
    installs_total: int
    succeeded_total: int
    rollbacks_total: int
    last: dict[str, Any] | None  # the last finished update: version, slot, result, at, ...


def update_status() -> dict[str, Any]:
    """The state appliance.update keeps (a seam for tests of a box with update history)."""
    return update.update_status()


@register
class UpdateWatchdog(Watchdog[UpdateReading]):
    name = "update"
    reading_type = UpdateReading
    families = (
        Family("sluice_update_info", "gauge", "always 1; the running release and the root slot GRUB booted",
               ("version", "commit", "slot")),
        Family("sluice_update_pending", "gauge", "1 while an installed update has not yet proved itself"),
        Family("sluice_update_installs", "counter", "bundles installed into the other slot"),
        Family("sluice_update_succeeded", "counter", "updates whose new slot captured and was marked good"),
        Family("sluice_update_rollbacks", "counter", "updates that failed and left the box on the previous slot"),
        Family("sluice_update_last_succeeded", "gauge",
               "1 when the last finished update succeeded, 0 when it rolled back; labels say which",
               ("version", "slot")),
        Family("sluice_update_last_timestamp_seconds", "gauge", "when the last update finished (unix time)"),
    )

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval)

    def check(self, ctx: Context) -> UpdateReading:
        u = update_status()
        return UpdateReading(str(u["version"]), str(u["commit"]), str(u["slot"]), bool(u["pending"]),
                             int(u["installs_total"]), int(u["succeeded_total"]), int(u["rollbacks_total"]),
                             u.get("last") or None)

    @classmethod
    def samples(cls, reading: UpdateReading) -> Iterable[Sample]:
        yield Sample("sluice_update_info", (reading.version, reading.commit, reading.slot), 1.0)
        yield Sample("sluice_update_pending", (), 1.0 if reading.pending else 0.0)
        yield Sample("sluice_update_installs", (), float(reading.installs_total))
        yield Sample("sluice_update_succeeded", (), float(reading.succeeded_total))
        yield Sample("sluice_update_rollbacks", (), float(reading.rollbacks_total))
        last = reading.last
        if last:
            yield Sample("sluice_update_last_succeeded", (str(last.get("version")), str(last.get("slot"))),
                         1.0 if last.get("result") == "succeeded" else 0.0)
            yield Sample("sluice_update_last_timestamp_seconds", (), float(last.get("at") or 0))

    @classmethod
    def describe(cls, reading: UpdateReading) -> list[str]:
        last = reading.last
        return [f"release: {reading.version} ({reading.commit}) on slot {reading.slot}"
                + (", an update on trial" if reading.pending else "")
                + (f"; last update {last.get('version')} {last.get('result')}" if last else "")]
