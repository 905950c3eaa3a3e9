"""The time watchdog journals the box's clock (`clock`: host, offset, error bound) for `sluice merge`:
at the first check, then every clock_journal_interval, and at once on a step. Real adjtimex."""

from __future__ import annotations

import time
from pathlib import Path

from appliance import config
from appliance.journal import Journal, read_events
from appliance.watchdogs import Context
from appliance.watchdogs.time import StepDetector, TimeWatchdog


def _cfg(spool: Path, interval: float) -> config.Config:
    return config.loads(f"""
[capture]
interfaces = ["lo"]
spool = "{spool}"
host = "boxa"
[watchdogs]
clock_journal_interval = {interval}
""", "t")


def test_clock_is_journaled_first_then_every_interval(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 60)
    journal = Journal(tmp_path / "journal.jsonl")
    wd = TimeWatchdog(cfg)
    first = wd.check(Context(cfg, journal, monotonic=1000.0))
    wd.check(Context(cfg, journal, monotonic=1005.0))   # 5 s later: not yet
    wd.check(Context(cfg, journal, monotonic=1059.0))
    wd.check(Context(cfg, journal, monotonic=1060.5))   # 60.5 s after the first: again
    events = list(read_events(journal.path, "clock"))
    assert len(events) == 2, events
    ev = events[0]
    assert ev["host"] == "boxa" and ev["source"] == first.source
    assert ev["offset_seconds"] == first.offset_seconds and ev["error_seconds"] == first.error_seconds
    assert ev["error_seconds"] >= 0


def test_a_clock_step_is_journaled_at_once(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 3600)
    journal = Journal(tmp_path / "journal.jsonl")
    wd = TimeWatchdog(cfg)
    realtime = [time.time()]  # the realtime clock the detector sees, stepped 5 s forward below
    wd.detector = StepDetector(cfg.watchdogs.time_step_threshold, clock_real=lambda: realtime[0],
                               clock_mono=lambda: 0.0)
    wd.check(Context(cfg, journal, monotonic=10.0))
    realtime[0] += 5.0
    wd.check(Context(cfg, journal, monotonic=15.0))
    assert [e["event"] for e in read_events(journal.path) if e["event"] in ("clock", "time_step")] == \
        ["clock", "time_step", "clock"]
