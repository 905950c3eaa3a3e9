"""Self-test watchdog: the last `sluice selftest` result kept in the spool (SPOOL/selftest.json),
exported as sluice_selftest_* (appliance/selftest/report.py makes the samples)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.config import Config
from appliance.selftest.report import load_result, metric_families
from appliance.watchdogs import Context, Family, Sample, Watchdog, register


@dataclass
class SelftestReading:
    result: dict[str, Any] | None  # None before the first self-test


@register
class SelftestWatchdog(Watchdog[SelftestReading]):
    name = "selftest"
    reading_type = SelftestReading
    families = (
        Family("sluice_selftest_timestamp_seconds", "gauge", "when the last self-test finished (unix time)"),
        Family("sluice_selftest_lossless_packets_per_second", "gauge",
               "highest rate captured without loss, per frame size", ("frame_bytes",)),
        Family("sluice_selftest_lossless_bits_per_second", "gauge",
               "that rate as link load (frame + 20 B preamble and gap), per frame size", ("frame_bytes",)),
        Family("sluice_selftest_generator_limited", "gauge",
               "1 when nothing was lost even at the generator's top speed (the ceiling is a floor)",
               ("frame_bytes",)),
        Family("sluice_selftest_cpu_seconds_per_packet", "gauge",
               "capture CPU time per packet at the lossless ceiling", ("frame_bytes",)),
        Family("sluice_selftest_disk_write_bytes_per_second", "gauge",
               "sustained write rate of the spool (O_DIRECT, 4 MiB blocks)"),
        Family("sluice_selftest_link_bits_per_second", "gauge", "link speed the self-test judged against",
               ("interface",)),
        Family("sluice_selftest_keeps_up", "gauge", "1 when the lossless ceiling reaches the link speed",
               ("interface",)),
        Family("sluice_selftest_retention_seconds_at_link_rate", "gauge",
               "how long the spool above its floor holds the links' full rate"),
    )

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval)

    def check(self, ctx: Context) -> SelftestReading:
        return SelftestReading(load_result(ctx.cfg.spool))

    @classmethod
    def samples(cls, reading: SelftestReading) -> Iterable[Sample]:
        for fam in metric_families(reading.result):
            for s in fam.samples:
                yield Sample(fam.name, tuple(s.labels.values()), s.value)

    @classmethod
    def describe(cls, reading: SelftestReading) -> list[str]:
        r = reading.result
        if not r:
            return []
        keeps = ", ".join(f"{v['interface']} {'keeps up' if v['keeps_up'] else 'does NOT keep up'}"
                          for v in r.get("verdicts", []))
        return [f"selftest: last run at {r.get('ts')}" + (f": {keeps}" if keeps else "")]
