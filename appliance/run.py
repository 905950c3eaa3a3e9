"""`sluice run`: the main job behind `make run`.

Brings a lab up, keeps real traffic flowing between its hosts, runs the appliance on the lab's
SPAN port for the given time with a status line every few seconds, then prints a summary and
tears everything down: also on Ctrl-C, SIGTERM or any failure.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from appliance.errors import SluiceError
from appliance.lab import netns, topology, traffic
from appliance.lab.commands import lab_down, lab_up

STATUS_INTERVAL = 5.0


@dataclass
class SpanCounters:
    """What the SPAN port itself saw: the kernel's counters of the capture interface."""

    lab: topology.Lab
    start: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    last_time: float = 0.0

    def begin(self) -> None:
        self.start = self.last = netns.link_stats(self.lab.capture_ns, self.lab.capture_if)
        self.last_time = time.monotonic()

    def status_line(self, elapsed: float) -> str:
        now = netns.link_stats(self.lab.capture_ns, self.lab.capture_if)
        t = time.monotonic()
        dt = max(t - self.last_time, 1e-6)
        pps = (now["rx_packets"] - self.last["rx_packets"]) / dt
        mbps = (now["rx_bytes"] - self.last["rx_bytes"]) * 8 / dt / 1e6
        self.last, self.last_time = now, t
        return (f"[{elapsed:5.0f}s] span {self.lab.capture_if}: {now['rx_packets'] - self.start['rx_packets']} "
                f"packets, {now['rx_bytes'] - self.start['rx_bytes']} bytes, {pps:.0f} pkt/s, "
                f"{mbps:.2f} Mbit/s, dropped {now['rx_dropped'] - self.start['rx_dropped']}")

    def summary(self) -> list[str]:
        total = {k: self.last[k] - self.start[k] for k in ("rx_packets", "rx_bytes", "rx_dropped")}
        return [f"SPAN port {self.lab.capture_if} (namespace {self.lab.capture_ns}) received "
                f"{total['rx_packets']} packets, {total['rx_bytes']} bytes, dropped {total['rx_dropped']}"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(seconds: float, out: TextIO = sys.stdout, status_interval: float = STATUS_INTERVAL) -> int:
    """The whole main job; returns the exit code. Nothing of the lab outlives this call."""
    netns.require_root("sluice run")
    if seconds <= 0:
        raise SluiceError(f"--seconds {seconds} is not allowed: a positive number of seconds")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    stop = threading.Event()
    lab = None
    mix: dict[str, int] = {}
    try:
        lab = lab_up()
        print(f"lab {lab.id} up: capture interface {lab.capture_if} in namespace {lab.capture_ns}", file=out)
        counters = SpanCounters(lab)
        counters.begin()
        worker = threading.Thread(target=lambda: mix.update(traffic.mixed(lab, seconds, stop.is_set)),
                                  name="lab-traffic", daemon=True)
        worker.start()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            stop.wait(min(status_interval, seconds - elapsed))
            print(counters.status_line(time.monotonic() - started), file=out, flush=True)
        stop.set()
        worker.join(timeout=30)
        print("summary:", file=out)
        for line in counters.summary():
            print(f"  {line}", file=out)
        print("  traffic: " + ", ".join(f"{k} {v}" for k, v in mix.items()), file=out)
        return 0
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        if lab is not None:
            lab_down(lab.id)
            print(f"lab {lab.id} removed", file=out, flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the main job: the appliance on the lab's SPAN port, status, summary")
    p.add_argument("--seconds", type=float, default=60, help="how long to capture (default 60)")
    p.add_argument("--status-interval", type=float, default=STATUS_INTERVAL, help="seconds between status lines")
    p.set_defaults(func=lambda args: run(args.seconds, status_interval=args.status_interval))
