"""Time watchdog: the kernel clock discipline (adjtimex), chrony when present, clock steps.

adjtimex(2) with modes=0 only reads: it tells whether the kernel considers the clock
synchronised (STA_UNSYNC clear and state != TIME_ERROR), its estimated offset and max error.
`chronyc -c tracking` gives chrony's own offset when chronyd runs. A step is seen when the
realtime clock moves against the monotonic clock by more than a threshold between two checks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.config import Config
from appliance.watchdogs import Context, Family, Sample, Watchdog, register

STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex from <sys/timex.h> (glibc, 64-bit)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11),
    ]


@dataclass
class KernelClock:
    synchronized: bool
    offset_seconds: float
    max_error_seconds: float
    est_error_seconds: float
    state: int
    status: int


def read_adjtimex() -> KernelClock:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    tx = _Timex()
    state = libc.adjtimex(ctypes.byref(tx))
    if state < 0:
        raise OSError(ctypes.get_errno(), "adjtimex failed")
    offset_unit = 1e-9 if tx.status & STA_NANO else 1e-6
    return KernelClock(
        synchronized=not (tx.status & STA_UNSYNC) and state != TIME_ERROR,
        offset_seconds=tx.offset * offset_unit,
        max_error_seconds=tx.maxerror * 1e-6,
        est_error_seconds=tx.esterror * 1e-6,
        state=state,
        status=tx.status,
    )


@dataclass
class ChronyTracking:
    reference: str
    stratum: int
    offset_seconds: float  # system time minus true time (chrony's "System time", sign flipped)
    leap_status: str
    root_delay_seconds: float = 0.0
    root_dispersion_seconds: float = 0.0

    @property
    def error_seconds(self) -> float:
        """chrony's bound on the clock's error against true time (chrony's documentation of
        `tracking`: root dispersion + root delay / 2), plus what is not yet corrected."""
        return self.root_dispersion_seconds + self.root_delay_seconds / 2 + abs(self.offset_seconds)


def parse_chrony_tracking(line: str) -> ChronyTracking | None:
    """One line of `chronyc -c tracking` (CSV, 14 fields); None for anything else."""
    fields = line.strip().split(",")
    if len(fields) < 14:
        return None
    try:
        # chrony's "System time" is how far true time is ahead of the system clock
        # (positive: the system clock is slow), so the clock's offset is its negation.
        return ChronyTracking(reference=fields[1] or fields[0], stratum=int(fields[2]),
                              offset_seconds=-float(fields[4]), leap_status=fields[13],
                              root_delay_seconds=float(fields[10]), root_dispersion_seconds=float(fields[11]))
    except ValueError:
        return None


def read_chrony(timeout: float = 2.0) -> ChronyTracking | None:
    exe = shutil.which("chronyc")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "-c", "tracking"], capture_output=True, text=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return None
    if proc.returncode != 0:
        return None
    return parse_chrony_tracking(proc.stdout)


class StepDetector:
    """Sees clock steps: realtime minus monotonic should stay constant between two looks."""

    def __init__(self, threshold: float, clock_real=time.time, clock_mono=time.monotonic) -> None:
        self.threshold = threshold
        self._real = clock_real
        self._mono = clock_mono
        self._delta: float | None = None
        self.steps = 0

    def check(self) -> float | None:
        """The step in seconds since the last check (positive: jumped forward), or None."""
        delta = self._real() - self._mono()
        previous, self._delta = self._delta, delta
        if previous is None:
            return None
        step = delta - previous
        if abs(step) > self.threshold:
            self.steps += 1
            return step
        return None


@dataclass
class TimeReading:
    synchronized: bool
    offset_seconds: float
    max_error_seconds: float
    source: str  # "chrony" or "adjtimex"
    step_seconds: float | None
    steps_total: int
    error_seconds: float = 0.0  # bound on |offset - true offset|: chrony's, else adjtimex maxerror


def read(detector: StepDetector) -> TimeReading:
    kernel = read_adjtimex()
    chrony = read_chrony()
    step = detector.check()
    return TimeReading(
        synchronized=kernel.synchronized,
        offset_seconds=chrony.offset_seconds if chrony else kernel.offset_seconds,
        max_error_seconds=kernel.max_error_seconds,
        source="chrony" if chrony else "adjtimex",
        step_seconds=step,
        steps_total=detector.steps,
        error_seconds=chrony.error_seconds if chrony else kernel.max_error_seconds,
    )


@register
class TimeWatchdog(Watchdog[TimeReading]):
    """The kernel's clock discipline, chrony's offset, and steps of the realtime clock."""

    name = "time"
    reading_type = TimeReading
    families = (
        Family("sluice_time_synchronized", "gauge", "1 when the kernel says the clock is synchronised"),
        Family("sluice_time_offset_seconds", "gauge", "estimated offset from true time"),
        Family("sluice_time_max_error_seconds", "gauge", "adjtimex maxerror"),
        Family("sluice_time_steps", "counter", "clock steps seen (realtime moved against monotonic)"),
    )

    def __init__(self, cfg: Config) -> None:
        self.detector = StepDetector(cfg.watchdogs.time_step_threshold)
        self._journaled: tuple[float, float] | None = None  # (monotonic, offset) of the last `clock`
        super().__init__(cfg)

    def reconfigure(self, cfg: Config) -> None:
        self.detector.threshold = cfg.watchdogs.time_step_threshold
        self.host = cfg.host
        self.clock_journal_interval = cfg.watchdogs.clock_journal_interval

    def interval(self, cfg: Config) -> float | None:
        return float(cfg.watchdogs.interval)

    def check(self, ctx: Context) -> TimeReading:
        reading = read(self.detector)
        if reading.step_seconds is not None and ctx.journal is not None:
            ctx.journal.append("time_step", step_seconds=round(reading.step_seconds, 6))
        if ctx.journal is not None and self._clock_due(ctx.monotonic, reading):
            # the box's clock over time: `sluice merge` corrects each box's files by it
            ctx.journal.append("clock", host=self.host, offset_seconds=reading.offset_seconds,
                               error_seconds=reading.error_seconds, source=reading.source,
                               synchronized=reading.synchronized)
            self._journaled = (ctx.monotonic, reading.offset_seconds)
        return reading

    def _clock_due(self, mono: float, reading: TimeReading) -> bool:
        """Every clock_journal_interval, and at once when the offset moved by more than its
        error bound (a step, a new time source) since the last `clock` event."""
        if self._journaled is None or reading.step_seconds is not None:
            return True
        last_mono, last_offset = self._journaled
        return mono - last_mono >= self.clock_journal_interval or \
            abs(reading.offset_seconds - last_offset) > max(reading.error_seconds, 1e-3)

    @classmethod
    def samples(cls, reading: TimeReading) -> Iterable[Sample]:
        yield Sample("sluice_time_synchronized", (), 1.0 if reading.synchronized else 0.0)
        yield Sample("sluice_time_offset_seconds", (), reading.offset_seconds)
        yield Sample("sluice_time_max_error_seconds", (), reading.max_error_seconds)
        yield Sample("sluice_time_steps", (), float(reading.steps_total))

    @classmethod
    def describe(cls, reading: TimeReading) -> list[str]:
        return [f"time: {'synchronised' if reading.synchronized else 'NOT synchronised'} ({reading.source}), "
                f"offset {reading.offset_seconds * 1000:+.3f} ms, max error {reading.max_error_seconds * 1000:.1f} ms, "
                f"{reading.steps_total} steps"]
