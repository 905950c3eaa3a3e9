"""Steps and the ramp: one frame size at one rate for some seconds, and the search for the
highest rate with no loss.

A step counts every frame: what left trafgen's end, what the capture took in, and where the
rest went: the kernel ring (`kernel_drops`), the writer's buffers (`writer_drops`), or before
any socket (the receive backlog). The ramp first sends at full speed; if nothing is lost there,
the ceiling is at least that rate and the generator is the limit. A step in which the writer's
buffers filled past half (or past 256 MiB) counts as lossy too even if nothing was lost yet: the
buffers only hid, for the step's few seconds, a writer or disk slower than the traffic. Otherwise it climbs from a
fraction of that rate in equal steps until the first loss, then halves the gap between the
best lossless and the first lossy rate `refine` times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.selftest.capture import Capture
from appliance.selftest.rig import Rig

WIRE_OVERHEAD = 20  # preamble, start delimiter and inter-frame gap: what a frame costs a link
DISK_BOUND = 0.8    # writer drops while writing at >= 80 % of the disk's rate: the disk is the limit
# A step whose writer buffers held more than half of them, or more than 256 MiB, at some point:
# the writer fell behind; buffers that size absorb a burst, not a rate (the "auto" buffers are
# RAM/16, seconds of traffic that a few-second step would never fill).
BUFFER_BOUND = 0.5
BUFFER_BOUND_BYTES = 256 * 2**20


def line_bits(pps: float, frame_bytes: int) -> float:
    """The link load in bit/s that pps frames of this size (with FCS) make."""
    return pps * (frame_bytes + WIRE_OVERHEAD) * 8


@dataclass
class Step:
    frame_bytes: int
    target_pps: float | None  # None: full speed
    seconds: float
    sent: int
    captured: int
    ring_drops: int
    writer_drops: int
    backlog_drops: int
    cpu_seconds: float
    bytes_written: int
    peak_buffer_fill: float
    buffer_bytes: int

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.captured)

    @property
    def sustainable(self) -> bool:
        bound = min(BUFFER_BOUND, BUFFER_BOUND_BYTES / self.buffer_bytes) if self.buffer_bytes else BUFFER_BOUND
        return self.peak_buffer_fill < bound

    @property
    def lossless(self) -> bool:
        """Nothing lost, and nothing that would be lost if the rate went on."""
        return self.lost == 0 and self.sent > 0 and self.sustainable

    @property
    def pps(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ns_per_packet(self) -> float | None:
        return self.cpu_seconds / self.captured * 1e9 if self.captured else None

    def stage(self, disk_bytes_per_second: float) -> str:
        """Which stage lost the most of this step's frames."""
        if self.lossless:
            return "none"
        if self.lost == 0:  # buffers filling: the writer thread or the disk is behind
            return self._writer_or_disk(disk_bytes_per_second)
        worst = max(self.ring_drops, self.writer_drops, self.backlog_drops)
        if worst == self.ring_drops and worst > 0:
            return "kernel ring"
        if worst == self.writer_drops and worst > 0:
            return self._writer_or_disk(disk_bytes_per_second)
        return "kernel backlog"

    def _writer_or_disk(self, disk_bytes_per_second: float) -> str:
        write_rate = self.bytes_written / self.seconds if self.seconds > 0 else 0.0
        if disk_bytes_per_second > 0 and write_rate >= DISK_BOUND * disk_bytes_per_second:
            return "disk"
        return "writer buffers"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(lost=self.lost, lossless=self.lossless, pps=round(self.pps, 1),
                 cpu_ns_per_packet=self.cpu_ns_per_packet, cpu_seconds=round(self.cpu_seconds, 3),
                 seconds=round(self.seconds, 3))
        return d


def run_step(rig: Rig, cap: Capture, frame_bytes: int, target_pps: float | None, seconds: float) -> Step:
    before_link = rig.counters()
    before = cap.settled()
    cpu_before = cap.cpu_seconds()
    cap.take_peak_buffer_fill()
    rig.start_generator(frame_bytes, target_pps)
    # The rate is timed from the first frame on the wire: trafgen's start-up is not sending.
    deadline = time.monotonic() + 5
    while rig.counters().sent == before_link.sent and time.monotonic() < deadline and rig.generator_running():
        time.sleep(0.005)
    start_link = rig.counters()
    start = time.monotonic()
    time.sleep(seconds)
    rig.stop_generator()
    peak_fill = cap.take_peak_buffer_fill()
    rig.wait_idle()
    end_link = rig.counters()
    elapsed = time.monotonic() - start
    after = cap.settled()
    cpu = cap.cpu_seconds() - cpu_before
    sent = end_link.sent - before_link.sent
    packets = after["packets"] - before["packets"]
    writer_drops = after["writer_drops"] - before["writer_drops"]
    ring_drops = after["kernel_drops"] - before["kernel_drops"]
    captured = packets - writer_drops
    # The frames sent before `start` (at most a few) count in the packets, not in the rate's time:
    # the rate is over what was sent between start and end.
    timed = end_link.sent - start_link.sent
    seconds_for_rate = elapsed * sent / timed if timed else elapsed
    return Step(frame_bytes=frame_bytes, target_pps=target_pps, seconds=seconds_for_rate, sent=sent,
                captured=captured, ring_drops=ring_drops, writer_drops=writer_drops,
                backlog_drops=max(0, sent - captured - ring_drops - writer_drops), cpu_seconds=cpu,
                bytes_written=after["bytes_written"] - before["bytes_written"], peak_buffer_fill=peak_fill,
                buffer_bytes=int(after.get("buffer_bytes") or 0))


@dataclass
class Ceiling:
    """What one frame size found."""

    frame_bytes: int
    lossless: Step | None          # the fastest step without loss
    first_loss: Step | None        # the slowest step with loss (None: none lost anything)
    limit: str                     # generator, kernel ring, writer buffers, disk, kernel backlog
    steps: list[Step] = field(default_factory=list)

    @property
    def lossless_pps(self) -> float:
        return self.lossless.pps if self.lossless else 0.0

    @property
    def lossless_bits(self) -> float:
        return line_bits(self.lossless_pps, self.frame_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_bytes": self.frame_bytes,
            "lossless_packets_per_second": round(self.lossless_pps, 1),
            "lossless_bits_per_second": round(self.lossless_bits),
            "first_loss_packets_per_second": round(self.first_loss.pps, 1) if self.first_loss else None,
            "limit": self.limit,
            "generator_limited": self.limit == "generator",
            "cpu_ns_per_packet": self.lossless.cpu_ns_per_packet if self.lossless else None,
            "steps": [s.to_dict() for s in self.steps],
        }


def find_ceiling(rig: Rig, cap: Capture, frame_bytes: int, seconds: float, steps: int, refine: int,
                 disk_bytes_per_second: float, progress: Callable[[Step], None] = lambda s: None) -> Ceiling:
    done: list[Step] = []
    # The token bucket delivers less than its rate (trafgen fills its ring in bursts): each shaped
    # step asks for target / gain, gain being what the previous shaped step delivered of its ask.
    gain = 1.0

    def step(target: float | None) -> Step:
        nonlocal gain
        ask = None if target is None else target / gain
        s = run_step(rig, cap, frame_bytes, ask, seconds)
        if ask:
            gain = min(max(s.pps / ask, 0.3), 1.5)
            s.target_pps = target
        done.append(s)
        progress(s)
        return s

    top = step(None)
    if top.lossless:
        return Ceiling(frame_bytes, top, None, "generator", done)
    best: Step | None = None
    worst = top
    for k in range(1, max(steps, 1)):
        s = step(top.pps * k / steps)
        if not s.lossless:
            worst = s
            break
        best = s if best is None or s.pps > best.pps else best
    for _ in range(refine):
        low = best.pps if best else 0.0
        s = step((low + worst.pps) / 2)
        if s.lossless:
            best = s if best is None or s.pps > best.pps else best
        elif s.pps < worst.pps:
            worst = s
    return Ceiling(frame_bytes, best, worst, worst.stage(disk_bytes_per_second), done)
