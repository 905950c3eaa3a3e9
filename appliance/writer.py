"""One sluice-capture process and its stats channel.

A WriterProcess builds the writer's flags from the config, starts it, reads its JSON-lines
stats channel on a thread (native/README.md, schema v1), and keeps counters that never go
backwards: the counters of each finished run are folded into a carried base, so the totals it
reports are base + the running process's own cumulative counters. It also decides whether the
running process is stalled; restarting is the supervisor's job.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.config import Config, format_size

log = logging.getLogger("sluice.writer")

# Cumulative counters of the stats channel that the supervisor carries across restarts.
COUNTERS = ("packets", "bytes", "kernel_drops", "kernel_freezes", "writer_drops", "bytes_written",
            "files_closed", "errors")
STATS_SCHEMA_VERSION = 1


def resolve_worker_cpus(setting: str | list[int], tuned: list[int] | None, workers: int) -> list[int] | None:
    """The CPUs to pin the workers to (one per worker, in order), or None to leave them unpinned.

    `setting` is `[capture] worker_cpus`: a list (checked against `workers` by the config), [] for
    none, or "auto": the CPUs that `sluice nic tune` chose for the RX queue interrupts (`tuned`),
    so that each worker runs where its queue's interrupts land; the first `workers` of them, and
    none when tuning chose fewer CPUs than there are workers (or did not run).
    """
    if setting != "auto":
        return list(setting) or None
    if not tuned or len(tuned) < workers:
        return None
    return list(tuned[:workers])


def writer_argv(cfg: Config, interface: str, binary: str, cpus: list[int] | None = None) -> list[str]:
    """The sluice-capture command line for one interface (flags: native/README.md).

    `--follow-parent`: the writer closes its file and exits when the supervisor dies (even by
    SIGKILL), so a restarted supervisor never finds an orphan writing beside its new writer.
    """
    cap = cfg.sections["capture"]
    argv = [
        binary, "-i", interface, "-w", str(cfg.capture_dir), "--date-dirs", "--host", cfg.host, "--follow-parent",
        "--format", cap["format"], "--snaplen", str(cap["snaplen"]),
        "--workers", str(cap["workers"]), "--fanout", cap["fanout"],
        "--ring-mb", str(cap["ring_mb"]), "--buffer-mb", str(cap["buffer_mb"]),
        "--rotate-size", format_size(cap["rotate_size"]),
        "--stats-interval", f"{cfg.get('supervisor', 'stats_interval'):g}",
        "--timestamps", cap["timestamps"], "--backend", cap["backend"],
    ]
    if cap["rotate_seconds"]:
        argv += ["--rotate-seconds", str(cap["rotate_seconds"])]
    if cap["slice"] == "header":
        argv += ["--slice", "header"]
    if cap["filter"]:
        argv += ["--filter", cap["filter"]]
    if cap["compression"] != "none":
        argv += ["--compress", cap["compression"]]
    if cpus:
        argv += ["--cpus", ",".join(str(c) for c in cpus)]
    if cap["user"]:
        argv += ["--user", cap["user"]]
    if cap["readers_group"]:
        argv += ["--group", cap["readers_group"]]
    priv = cfg.privacy
    if priv.anonymize_key:
        argv += ["--anonymize", priv.anonymize_key]
    if priv.key_dir:
        argv += ["--key-dir", priv.key_dir, "--key-rotate-seconds", str(priv.key_rotate_seconds)]
    if priv.key_socket:
        argv += ["--key-socket", priv.key_socket, "--key-rotate-seconds", str(priv.key_rotate_seconds)]
    if priv.keep_payload:
        argv += ["--keep-payload", priv.keep_payload]
    if priv.drop_payload:
        argv += ["--drop-payload", priv.drop_payload]
    return argv


@dataclass
class RunResult:
    """How one writer run ended."""

    returncode: int | None
    reason: str
    stderr_tail: list[str]


@dataclass
class WriterState:
    """What the supervisor and the metrics see of one interface's writer (a copy, safe to keep)."""

    interface: str
    running: bool = False
    up: bool = False
    pid: int | None = None
    restarts: int = 0
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    drop_ratio: float = 0.0
    ring_fill: float = 0.0
    buffer_fill: float = 0.0
    disk_error: str | None = None
    current_file: str | None = None
    ts_source: str | None = None
    last_file_closed_at: float | None = None
    last_stats_at: float | None = None
    packets_per_second: float = 0.0
    bytes_per_second: float = 0.0
    # What the writer reports of its memory: rings + staging buffers, and how many seconds of a
    # burst at the link's speed they hold while the disk takes nothing (None: speed unknown).
    ring_bytes: int | None = None
    buffer_bytes: int | None = None
    link_bps: int | None = None
    burst_seconds: float | None = None
    cpus: list[int] | None = None


class WriterProcess:
    """One capture interface's writer: start, read stats, detect stalls, stop; totals carried."""

    def __init__(self, cfg: Config, interface: str, binary: str,
                 on_record: Callable[[str, dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """clock: the monotonic clock of the stall and rate rules (a test gives its own, so that a
        stall of seconds takes none)."""
        self.interface = interface
        self.clock = clock
        self.binary = binary
        self.cfg = cfg
        self._on_record = on_record
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._base = dict.fromkeys(COUNTERS, 0)
        self._current = dict.fromkeys(COUNTERS, 0)
        self._last: dict[str, Any] = {}
        self._stderr: deque[str] = deque(maxlen=20)
        self.restarts = 0
        self.started_mono = 0.0
        self.last_stats_mono = 0.0
        self._write_stall_since: float | None = None
        self._last_stats_wall: float | None = None
        self._last_file_closed: float | None = None
        self._rate = (0.0, 0.0)
        self._term_sent = False
        self.seen_stats = False
        self._warned_v = False
        self.cpus: list[int] | None = None  # --cpus for the next start (the supervisor sets it)

    # -- process lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.cfg.capture_dir.mkdir(parents=True, exist_ok=True)
        argv = writer_argv(self.cfg, self.interface, self.binary, self.cpus)
        log.debug("starting %s", " ".join(argv))
        self._stderr.clear()
        self._term_sent = False
        self.seen_stats = False
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        now = self.clock()
        with self._lock:
            self._current = dict.fromkeys(COUNTERS, 0)
            self._last = {}
            self.started_mono = now
            self.last_stats_mono = now
            self._write_stall_since = None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self._proc,), daemon=True,
                             name=f"stats-{self.interface}"),
            threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True,
                             name=f"stderr-{self.interface}"),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reap(self) -> RunResult | None:
        """If the process has exited: fold its counters into the base and say how it ended."""
        if self._proc is None or self._proc.poll() is None:
            return None
        return self._finish(self._proc.returncode, "exited")

    def terminate(self) -> None:
        """Ask the writer to close its files and exit (once: a second SIGTERM is not sent)."""
        if self._proc is not None and self._proc.poll() is None and not self._term_sent:
            self._term_sent = True
            self._signal(signal.SIGTERM)

    def stop(self, timeout: float, reason: str = "stopped") -> RunResult | None:
        """SIGTERM (the writer closes and renames its files), SIGKILL after timeout."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("writer %s did not stop within %gs: killing it", self.interface, timeout)
                self._signal(signal.SIGKILL)
                self._proc.wait()
                reason = f"{reason}; killed after {timeout:g}s"
        return self._finish(self._proc.returncode, reason)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        assert self._proc is not None
        try:
            os.kill(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def _finish(self, returncode: int | None, reason: str) -> RunResult:
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        with self._lock:
            for k in COUNTERS:
                self._base[k] += self._current[k]
            self._current = dict.fromkeys(COUNTERS, 0)
        self._proc = None
        return RunResult(returncode, reason, list(self._stderr))

    # -- the stats channel ---------------------------------------------------------------------

    def _read_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                log.warning("writer %s: not a stats line: %.200r", self.interface, raw)
                continue
            if not isinstance(record, dict):
                continue
            self.handle_record(record)
        proc.stdout.close()

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr.append(line)
                level, text = writer_log_level(line)
                log.log(level, "writer %s: %s", self.interface, text)
        proc.stderr.close()

    def handle_record(self, record: dict[str, Any]) -> None:
        """Apply one stats-channel object (public so tests can feed recorded lines)."""
        kind = record.get("type")
        if record.get("v") != STATS_SCHEMA_VERSION and kind in ("stats", "final", "file") and not self._warned_v:
            self._warned_v = True
            log.warning("writer %s: stats schema v%s, expected v%d", self.interface, record.get("v"),
                        STATS_SCHEMA_VERSION)
        if kind in ("stats", "final"):
            self._apply_stats(record)
        elif kind == "file":
            with self._lock:
                self._last_file_closed = time.time()
        if self._on_record is not None:
            self._on_record(self.interface, record)

    def _apply_stats(self, record: dict[str, Any]) -> None:
        now = self.clock()
        stall_fill = self.cfg.get("supervisor", "stall_buffer_fill")
        with self._lock:
            prev = self._current
            new = {k: _count(record.get(k), prev[k]) for k in COUNTERS}
            dt = now - self.last_stats_mono if self._last else 0.0
            d_pk = new["packets"] - prev["packets"]
            d_drop = (new["kernel_drops"] - prev["kernel_drops"]) + (new["writer_drops"] - prev["writer_drops"])
            d_kd = new["kernel_drops"] - prev["kernel_drops"]
            self._last = dict(record)
            self._last["drop_ratio"] = d_drop / (d_pk + d_kd) if (d_pk + d_kd) > 0 else 0.0
            if dt > 0:
                self._rate = (d_pk / dt, (new["bytes"] - prev["bytes"]) / dt)
            wrote = new["bytes_written"] > prev["bytes_written"]
            buffered = float(record.get("buffer_fill") or 0.0) >= stall_fill
            if d_pk > 0 and not wrote and buffered:
                if self._write_stall_since is None:
                    self._write_stall_since = now
            else:
                self._write_stall_since = None
            self._current = new
            self.last_stats_mono = now
            self._last_stats_wall = time.time()
            self.seen_stats = True

    # -- what the supervisor asks --------------------------------------------------------------

    def stall_reason(self, now: float | None = None) -> str | None:
        """Why the running writer counts as stalled, or None."""
        if not self.running():
            return None
        return self.stall_check(self.clock() if now is None else now)

    def stall_check(self, now: float) -> str | None:
        """The stall rules on what the stats channel said so far (whether or not a process runs)."""
        timeout = self.cfg.get("supervisor", "stall_timeout")
        with self._lock:
            silent = now - self.last_stats_mono
            stall_since = self._write_stall_since
        if silent > timeout:
            return f"no stats for {silent:.1f}s"
        if stall_since is not None and now - stall_since > timeout:
            return f"packets arriving but nothing written for {now - stall_since:.1f}s"
        return None

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {k: self._base[k] + self._current[k] for k in COUNTERS}

    def state(self) -> WriterState:
        timeout = self.cfg.get("supervisor", "stall_timeout")
        running = self.running()
        with self._lock:
            last = dict(self._last)
            fresh = bool(last) and self.clock() - self.last_stats_mono <= timeout
            return WriterState(
                interface=self.interface,
                running=running,
                up=running and fresh,
                pid=self.pid,
                restarts=self.restarts,
                totals={k: self._base[k] + self._current[k] for k in COUNTERS},
                drop_ratio=float(last.get("drop_ratio", 0.0)) if running else 0.0,
                ring_fill=_ratio(last.get("ring_fill")) if running else 0.0,
                buffer_fill=_ratio(last.get("buffer_fill")) if running else 0.0,
                disk_error=last.get("disk_error") if running else None,
                current_file=last.get("current_file") if running else None,
                ts_source=last.get("ts_source"),
                last_file_closed_at=self._last_file_closed,
                last_stats_at=self._last_stats_wall,
                packets_per_second=self._rate[0] if running else 0.0,
                bytes_per_second=self._rate[1] if running else 0.0,
                ring_bytes=_opt_int(last.get("ring_bytes")),
                buffer_bytes=_opt_int(last.get("buffer_bytes")),
                link_bps=_opt_int(last.get("link_bps")),
                burst_seconds=_opt_float(last.get("burst_seconds")),
                cpus=list(self.cpus) if self.cpus else None,
            )


def _count(value: Any, previous: int) -> int:
    """A cumulative counter from a stats line; a missing or bad value keeps the previous one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return max(value, previous)
    return previous


def _ratio(value: Any) -> float:
    try:
        return min(max(float(value), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.0


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _opt_float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING}


def writer_log_level(line: str) -> tuple[int, str]:
    """A writer's stderr line ("sluice-capture: LEVEL: text", native/src/capture/log.h) as the
    logging level it keeps and the text without the program name."""
    text = line.removeprefix("sluice-capture: ")
    head, sep, rest = text.partition(": ")
    if sep and head in _LEVELS:
        return _LEVELS[head], rest
    return logging.INFO, text
