"""`sluice run`: the main job behind `make run`.

Brings a lab up, keeps real traffic flowing between its hosts, runs the appliance (`sluice
supervise` with a temporary config and spool) on the lab's SPAN port for the given time with a
status line every few seconds, then stops it cleanly, prints a summary of what was captured and
where, and tears the lab down: also on Ctrl-C, SIGTERM or any failure. The spool stays.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from appliance import config as config_mod
from appliance.errors import SluiceError
from appliance.lab import netns, topology, traffic
from appliance.lab.commands import lab_down, lab_up
from appliance.lab.harness.supervise import Supervise, writers_up
from appliance.status import human_bytes
from appliance.watchdogs.disk import capture_files

STATUS_INTERVAL = 5.0


@dataclass
class SpanCounters:
    """What the SPAN port itself saw: the kernel's counters of the capture interface."""

    lab: topology.Lab
    start: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    last_time: float = 0.0
    writer_up: dict[str, int] = field(default_factory=dict)  # the counters when the capture came up

    def begin(self) -> None:
        self.start = self.last = netns.link_stats(self.lab.capture_ns, self.lab.capture_if)
        self.last_time = time.monotonic()

    def mark_writer_up(self) -> None:
        self.writer_up = netns.link_stats(self.lab.capture_ns, self.lab.capture_if)

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

    def summary(self, captured: int | None = None) -> list[str]:
        """The SPAN port's count beside the captured one: the port also counted what arrived
        before the writer was up (lab start, NIC tuning, writer start), which is not loss."""
        total = {k: self.last[k] - self.start[k] for k in ("rx_packets", "rx_bytes", "rx_dropped")}
        lines = [f"SPAN port {self.lab.capture_if} (namespace {self.lab.capture_ns}) received "
                 f"{total['rx_packets']} packets, {total['rx_bytes']} bytes, dropped {total['rx_dropped']}"]
        if self.writer_up:
            before = self.writer_up["rx_packets"] - self.start["rx_packets"]
            after = self.last["rx_packets"] - self.writer_up["rx_packets"]
            lines.append(f"  of them {before} before the capture was up (not captured, not loss) and {after} "
                         "while it ran")
            if captured is not None:
                lines.append(f"  captured {captured} of those {after}: "
                             + ("nothing lost" if captured >= after else
                                f"{after - captured} not captured (the writer's drop counters say why)"))
        return lines


RUN_ROOT = Path("/var/tmp/sluice-run")


class Appliance:
    """`sluice supervise` inside the lab's capture namespace, on its SPAN interface."""

    def __init__(self, lab: topology.Lab, root: Path = RUN_ROOT) -> None:
        self.lab = lab
        self.dir = root / lab.id
        self.spool = self.dir / "spool"
        self.config = self.dir / "sluice.toml"
        self.log = self.dir / "supervise.log"
        self.supervise: Supervise | None = None
        # (monotonic time, packets, bytes) per interface at the previous status line: the rate
        # shown is over the whole status interval, not the writer's last one-second sample.
        self._previous: dict[str, tuple[float, int, int]] = {}

    def start(self, timeout: float = 20) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[capture]\ninterfaces = ["{self.lab.capture_if}"]\nspool = "{self.spool}"\nhost = "lab{self.lab.id}"\n'
            # ring and buffers left at "auto": `make run` shows what a box with this RAM does.
            'rotate_size = "16M"\n'
            '[metrics]\nlisten = "127.0.0.1:9750"\n'
            '[supervisor]\nstate_interval = 0.5\n'
            '[watchdogs]\ninterval = 2\nsmart = false\n')
        cfg = config_mod.load(self.config)
        config_mod.find_capture_binary(cfg)  # one clear line now rather than a dead writer later
        self.supervise = Supervise(self.lab.capture_ns, self.config, self.spool, log=self.log)
        try:
            self.supervise.start(ready=writers_up, timeout=timeout)
        except SluiceError as err:
            raise SluiceError(f"the capture did not come up: {str(err).splitlines()[0][:300]} (log: {self.log})",
                              1) from None

    def state(self) -> dict[str, Any]:
        return self.supervise.state() if self.supervise is not None else {}

    def status_line(self, elapsed: float) -> str:
        parts = []
        now = time.monotonic()
        for w in self.state().get("writers", []):
            t = w["totals"]
            then, packets, nbytes = self._previous.get(w["interface"], (now - elapsed, 0, 0))
            self._previous[w["interface"]] = (now, t["packets"], t["bytes"])
            dt = max(now - then, 1e-6)
            parts.append(f"{w['interface']} {'up' if w['up'] else 'DOWN'}: {t['packets']} packets "
                         f"({(t['packets'] - packets) / dt:.0f} pkt/s, {(t['bytes'] - nbytes) * 8 / dt / 1e6:.2f} "
                         "Mbit/s), "
                         f"written {human_bytes(t['bytes_written'])} in {t['files_closed']} closed files, drops "
                         f"kernel {t['kernel_drops']} writer {t['writer_drops']}, restarts {w['restarts']}")
        return f"[{elapsed:5.0f}s] capture " + ("; ".join(parts) or "starting")

    def stop(self, timeout: float = 30) -> int | None:
        if self.supervise is None or self.supervise.proc is None:
            return None
        try:
            return self.supervise.stop(timeout)
        except SluiceError:
            return self.supervise.proc.returncode  # killed: not a clean stop

    def summary(self) -> list[str]:
        state = self.state()
        files = capture_files(self.spool)
        lines = []
        for w in state.get("writers", []):
            t = w["totals"]
            lines.append(f"capture on {w['interface']}: {t['packets']} packets, {t['bytes']} bytes, "
                         f"dropped by the kernel {t['kernel_drops']}, by the writer {t['writer_drops']}, "
                         f"restarts {w['restarts']}")
        lines.append(f"files: {len(files)} capture files, {human_bytes(sum(f.size for f in files))}, "
                     f"under {self.spool / f'lab{self.lab.id}'}")
        lines.append(f"journal: {self.spool / 'journal.jsonl'}; supervisor log: {self.log}")
        lines.append(f"config: {self.config} (look again: `sudo .venv/bin/sluice status --config {self.config}`, "
                     f"`sluice config show --config {self.config}`)")
        return lines

    def captured_packets(self) -> int | None:
        """Packets the writers received and wrote (their own drops taken off)."""
        writers = self.state().get("writers", [])
        return sum(w["totals"]["packets"] - w["totals"]["writer_drops"] for w in writers) if writers else None


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
    appliance: Appliance | None = None
    mix: dict[str, int] = {}
    try:
        lab = lab_up()
        print(f"lab {lab.id} up: capture interface {lab.capture_if} in namespace {lab.capture_ns}", file=out)
        counters = SpanCounters(lab)
        counters.begin()
        appliance = Appliance(lab)
        appliance.start()
        counters.mark_writer_up()
        print(f"sluice supervise running in {lab.capture_ns} on {lab.capture_if}: spool {appliance.spool}, "
              f"config {appliance.config}", file=out, flush=True)
        worker = threading.Thread(target=lambda: mix.update(traffic.mixed(lab, seconds, stop.is_set)),
                                  name="lab-traffic", daemon=True)
        worker.start()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            stop.wait(min(status_interval, seconds - elapsed))
            print(appliance.status_line(time.monotonic() - started), file=out, flush=True)
            print(" " * 8 + counters.status_line(time.monotonic() - started).split("] ", 1)[1], file=out,
                  flush=True)
        stop.set()
        worker.join(timeout=30)
        counters.status_line(time.monotonic() - started)  # the port's counters while the capture still runs
        code = appliance.stop()
        print("summary:", file=out)
        if code != 0:
            print(f"  sluice supervise exited with {code} (log: {appliance.log})", file=out)
        for line in appliance.summary() + counters.summary(appliance.captured_packets()):
            print(f"  {line}", file=out)
        print("  traffic: " + ", ".join(f"{k} {v}" for k, v in mix.items()), file=out)
        # A supervisor that did not stop cleanly may have left files unclosed: not a success.
        return 0 if code == 0 else 1
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        if appliance is not None:
            appliance.stop()
        if lab is not None:
            lab_down(lab.id)
            print(f"lab {lab.id} removed", file=out, flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the main job: the appliance on the lab's SPAN port, status, summary")
    p.add_argument("--seconds", type=float, default=60, help="how long to capture (default 60)")
    p.add_argument("--status-interval", type=float, default=STATUS_INTERVAL, help="seconds between status lines")
    p.set_defaults(func=lambda args: run(args.seconds, status_interval=args.status_interval))
