"""The capture under test: sluice-capture with the box's own flags (workers, ring, buffers,
compression, format: `writer_argv` from the box's config, as the supervisor runs it), on the
rig's capture end, writing into a directory of the spool that the self-test removes afterwards.

Closed files are deleted as soon as the writer reports them, so the test never holds more of
the spool than one open file (rotate_size) plus the writer's buffers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from appliance import config as config_mod
from appliance.config import Config
from appliance.errors import SluiceError
from appliance.lab import netns
from appliance.writer import resolve_worker_cpus, writer_argv

STATS_INTERVAL = 0.2  # the test's own stats period: settles quickly after each step


def derive_config(cfg: Config, spool: Path, interface: str) -> Config:
    """The box's config with only the spool (the test's directory), the interface and the stats
    period changed: everything that shapes the capture stays as configured."""
    data = tomllib.loads(config_mod.dumps(cfg))
    data["capture"]["spool"] = str(spool)
    data["capture"]["interfaces"] = [interface]
    data["capture"]["host"] = cfg.host
    data["supervisor"]["stats_interval"] = STATS_INTERVAL
    return config_mod.validate(data, cfg.source)


def process_cpu_seconds(pid: int) -> float:
    """user+sys of a whole process (every thread, io_uring workers included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Capture:
    """One sluice-capture in the rig's namespace; its latest stats line, kept by a reader thread."""

    def __init__(self, cfg: Config, ns: str, interface: str, spool: Path) -> None:
        self.cfg = derive_config(cfg, spool, interface)
        self.ns = ns
        self.interface = interface
        # An explicit worker_cpus list pins the workers as on the box; "auto" follows the RX queue
        # interrupts of the capture NIC, which a veth does not have: unpinned here.
        cpus = resolve_worker_cpus(cfg.get("capture", "worker_cpus"), None, cfg.get("capture", "workers"))
        self.argv = writer_argv(self.cfg, interface, config_mod.find_capture_binary(cfg), cpus)
        self._proc: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._latest: dict[str, Any] = {}
        self._lines = 0
        self._peak_buffer_fill = 0.0
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self, timeout: float = 30.0) -> None:
        self.cfg.capture_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(netns.exec_argv(self.ns, self.argv), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        self.next_stats(timeout)  # the ring is bound once the first stats line comes

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            kind = record.get("type") if isinstance(record, dict) else None
            if kind == "file" and record.get("path"):
                # Closed: the test needs only the counters, not the data.
                Path(record["path"]).unlink(missing_ok=True)
            elif kind in ("stats", "final"):
                with self._cond:
                    self._latest = record
                    self._lines += 1
                    fill = record.get("buffer_fill")
                    if isinstance(fill, int | float):
                        self._peak_buffer_fill = max(self._peak_buffer_fill, float(fill))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip())

    def _failed(self) -> SluiceError:
        last = self._stderr[-1] if self._stderr else "no message"
        return SluiceError(f"the capture under test exited ({last.removeprefix('sluice-capture: ')})", 1)

    def next_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next stats line after this call."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = self._lines
            while self._lines == seen:
                if self._proc.poll() is not None:
                    raise self._failed()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SluiceError(f"the capture under test sent no stats for {timeout:g}s", 1)
                self._cond.wait(min(left, 0.2))
            return dict(self._latest)

    def settled(self, timeout: float = 15.0) -> dict[str, Any]:
        """Stats once the capture has taken in everything that arrived: the packet count and its
        drops unchanged over two stats lines and the ring empty."""
        deadline = time.monotonic() + timeout
        previous = self.next_stats()
        while True:
            now = self.next_stats()
            same = all(now.get(k) == previous.get(k) for k in ("packets", "kernel_drops", "writer_drops"))
            if same and not now.get("ring_fill"):
                return now
            if time.monotonic() > deadline:
                return now
            previous = now

    def take_peak_buffer_fill(self) -> float:
        """The highest buffer fill the stats lines showed since the last call (0..1)."""
        with self._cond:
            peak, self._peak_buffer_fill = self._peak_buffer_fill, 0.0
        return peak

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the writer closes its files), SIGKILL after timeout; a no-op if never started."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        for t in self._threads:
            t.join(timeout=5)
