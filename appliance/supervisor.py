"""`sluice supervise`: keeps one writer per capture interface alive, watches the box, exports
metrics, enforces retention, keeps the journal and the status file.

One loop on the main thread does everything but reading the writers' stats (a thread per
writer) and serving /metrics (prometheus-client's thread). Each pass: reap or restart writers
(exponential backoff, stall detection), run the watchdogs whose interval came (each registered
in appliance/watchdogs/, run through watchdogs.run), retention, then publish a typed snapshot
(metrics and status.json read it). SIGTERM/SIGINT stop the writers cleanly and exit 0; SIGHUP
reloads the config.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from appliance import __version__, spoolperm, watchdogs, webconfig
from appliance import config as config_mod
from appliance import status as status_mod
from appliance.catalog import on_writer_record as catalog_file_closed
from appliance.config import Config
from appliance.errors import SluiceError
from appliance.gaps.statslog import StatsLog
from appliance.journal import Journal, last_record
from appliance.metrics import MetricsServer
from appliance.retention import enforce as enforce_retention
from appliance.sdnotify import Notifier
from appliance.snapshot import RetentionSnapshot, Snapshot, WriterSnapshot, newest_file_age, snapshot_to_json
from appliance.watchdogs import disk as disk_wd
from appliance.watchdogs import nic as nic_wd
from appliance.writer import RunResult, WriterProcess, resolve_worker_cpus, writer_log_level

log = logging.getLogger("sluice.supervisor")

TICK = 0.2


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Delay before restart number `failures` (1, 2, ...) of a writer that keeps failing."""
    if failures <= 0:
        return 0.0
    return min(initial * (2 ** (failures - 1)), maximum)


def describe_exit(result: RunResult) -> str:
    code = result.returncode
    if code is None:
        how = "ended"
    elif code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
        if -code == signal.SIGSYS:  # the kernel's answer to a call outside sandbox.c's allow-list
            how += " (a system call outside its seccomp allow-list)"
    else:
        how = f"exited with status {code}"
    tail = f": {result.stderr_tail[-1]}" if result.stderr_tail else ""
    return how + tail


class WriterSlot:
    """A writer plus the supervisor's bookkeeping for it: restart schedule and failures."""

    def __init__(self, proc: WriterProcess) -> None:
        self.proc = proc
        self.failures = 0
        self.restart_at: float | None = 0.0  # monotonic time of the next (re)start; None: running
        self.restart_reason = "initial start"
        self.starts = 0
        # Only at supervisor start does a writer's bad-input exit stop everything; a writer added
        # by a reload must never take the running ones down.
        self.fatal_on_bad_start = False


class Supervisor:
    def __init__(self, cfg: Config, config_path: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.journal: Journal | None = None
        self.stats_log = StatsLog(cfg.spool / "stats")
        self.metrics: MetricsServer | None = None
        self.slots: dict[str, WriterSlot] = {}
        self.binary = ""
        self._stop = threading.Event()
        # Set by the writers' reader threads when a file closes: the loop wakes and retention
        # checks the free space at once (a flood into a small spool fills it within one interval).
        self._wake = threading.Event()
        self._file_closed = threading.Event()
        self._reload = False
        self._lock = threading.Lock()
        self._snapshot = Snapshot(version=__version__)
        self._due: dict[str, float] = {}
        self._freed_since_disk_check = 0
        # Every registered watchdog, and its last run (the reading None after a failed check).
        self.watchdogs = {name: cls(cfg) for name, cls in watchdogs.load_all().items()}
        self.runs: dict[str, watchdogs.WatchdogRun] = {}
        self._retention_files = 0
        self._retention_bytes = 0
        self._retention_waiting_for_backup = 0
        self._retention_blocked = False
        self._other_bytes = 0
        self._last_drops: dict[str, tuple[int, int]] = {}
        self._last_disk_error: dict[str, str | None] = {}
        self._warned: set[str] = set()
        self._fatal: SluiceError | None = None
        self._tuned_cpus: dict[str, list[int]] = {}  # interface -> the RX IRQ CPUs `nic tune` chose
        self.started_at = time.time()
        self.notifier = Notifier()
        self.ready = False  # every writer sent its first stats line (systemd READY=1)

    # -- setup -----------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Everything that must hold before a writer starts; each failure is one SluiceError line."""
        spool = self.cfg.spool
        try:
            spoolperm.prepare_capture_dir(self.cfg)
        except OSError as exc:
            raise SluiceError(f"spool {spool}: cannot create {self.cfg.capture_dir}: {exc.strerror}", 2) from None
        _free, _size, _inodes, read_only = disk_wd.statvfs(spool)
        if read_only or not os.access(self.cfg.capture_dir, os.W_OK):
            raise SluiceError(f"spool {spool}: filesystem is read-only or not writable", 2)
        for ifname in self.cfg.interfaces:
            if not Path("/sys/class/net", ifname).exists():
                raise SluiceError(f"interface {ifname}: no such interface (in this network namespace)", 2)
        self.binary = config_mod.find_capture_binary(self.cfg)

    def _start_metrics(self) -> None:
        host, port = self.cfg.metrics.listen
        web_path = self.cfg.get("metrics", "web_config")
        web = webconfig.load(web_path) if web_path else None
        self.metrics = MetricsServer(self.snapshot)
        try:
            bound = self.metrics.start(host, port, web)
        except OSError as exc:
            raise SluiceError(f"metrics listen {host}:{port}: cannot bind: {exc.strerror or exc}", 2) from None
        log.info("metrics on %s://%s:%d/metrics%s", "https" if web and web.tls else "http",
                 host if ":" not in host else f"[{host}]", bound,
                 f" ({len(web.users)} basic-auth users)" if web and web.users else "")

    def _make_slot(self, ifname: str) -> WriterSlot:
        return WriterSlot(WriterProcess(self.cfg, ifname, self.binary, on_record=self._on_record))

    # -- the writers' records (called on their reader threads) -------------------------------------

    def _on_record(self, interface: str, record: dict[str, Any]) -> None:
        catalog_file_closed(self.cfg.spool, interface, record)  # queued: never waits
        kind = record.get("type")
        if kind in ("stats", "final"):
            self.stats_log.append(interface, record)  # for the gap ledger (sluice gaps)
        if kind == "file":
            self._file_closed.set()
            self._wake.set()
        if self.journal is None:
            return
        if kind == "file":
            self.journal.append("file_closed", interface=interface, path=record.get("path"),
                                packets=record.get("packets"), bytes=record.get("bytes"),
                                first_ns=record.get("first_ns"), last_ns=record.get("last_ns"))
        elif kind == "recovered":  # a .part a crash left, closed by the writer at its start
            self.journal.append("file_recovered", interface=interface, part=record.get("part"),
                                path=record.get("path"), bytes=record.get("bytes"),
                                cut_bytes=record.get("cut_bytes"))
        elif kind == "final":
            self.journal.append("writer_final", interface=interface,
                                **{k: record.get(k) for k in ("packets", "bytes", "kernel_drops", "writer_drops",
                                                               "bytes_written", "files_closed")})

    # -- signals -----------------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self, *_: object) -> None:
        self._reload = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        self.preflight()
        previous = last_record(self.cfg.journal_path)
        self.journal = Journal(self.cfg.journal_path)
        if previous is not None and previous.get("event") != "supervisor_stop":
            # The last supervisor died without stopping (SIGKILL, power): its writers followed it
            # (--follow-parent); what arrived between its death and this start is not captured.
            last_ts = previous.get("ts") if isinstance(previous.get("ts"), int | float) else None
            self.journal.append("supervisor_unclean_stop", last_event=previous.get("event"), last_event_ts=last_ts,
                                gap_seconds=round(time.time() - last_ts, 3) if last_ts is not None else None)
            log.warning("the previous supervisor did not stop cleanly (last journal event: %s)", previous.get("event"))
        self._start_metrics()
        self.journal.append("supervisor_start", pid=os.getpid(), version=__version__, config=self.config_path,
                            interfaces=self.cfg.interfaces)
        try:
            if self.cfg.nic.tune:
                for ifname in self.cfg.interfaces:
                    report = nic_wd.tune(self.cfg, ifname, "start", self.journal)
                    if report is not None:
                        self._tuned_cpus[ifname] = list(report.worker_cpus)
            for ifname in self.cfg.interfaces:
                self.slots[ifname] = self._make_slot(ifname)
                self.slots[ifname].fatal_on_bad_start = True
            while not self._stop.is_set():
                if self._reload:
                    self._reload = False
                    self.reload()
                self.tick(time.monotonic())
                if self._fatal is not None:
                    raise self._fatal
                self._notify_systemd(time.monotonic())
                self._wake.wait(TICK)
                self._wake.clear()
        finally:
            self.notifier.notify(stopping=1, status="stopping: closing the capture files")
            self.shutdown()
            self.notifier.close()
        return 0

    def _notify_systemd(self, now: float) -> None:
        """READY=1 once every writer has sent a stats line (the capture runs); WATCHDOG=1 from
        this loop, so a hung loop makes systemd restart the supervisor (WatchdogSec=)."""
        if not self.ready and self.slots and all(slot.proc.seen_stats for slot in self.slots.values()):
            self.ready = True
            self.notifier.notify(ready=1, status=f"capturing on {', '.join(self.slots)}")
            log.info("capturing on %s", ", ".join(self.slots))
        interval = self.notifier.watchdog_interval
        if interval is not None and self._due_now("systemd watchdog", now, interval):
            self.notifier.notify(watchdog=1)

    def tick(self, now: float) -> None:
        for slot in list(self.slots.values()):
            self._supervise_writer(slot, now)
        self._journal_drops()
        closed = self._file_closed.is_set()
        self._file_closed.clear()
        if self._due_now("retention", now, self.cfg.retention.interval) or closed:
            self._guard("retention", self._retention)
        for name, watchdog in self.watchdogs.items():
            interval = watchdog.interval(self.cfg)
            if interval is not None and self._due_now(f"watchdog {name}", now, interval):
                self.run_watchdog(name)
        if self._due_now("state", now, self.cfg.supervisor.state_interval):
            self._guard("status file", self.publish)  # a full spool must not stop supervision

    def run_watchdog(self, name: str) -> watchdogs.WatchdogRun:
        """One check of one watchdog through the common wrapper; a failure is logged once."""
        ctx = watchdogs.Context(self.cfg, self.journal, time.monotonic(), self._freed_since_disk_check)
        run = watchdogs.run(self.watchdogs[name], ctx)
        if name == "disk":
            self._freed_since_disk_check = 0
        self.runs[name] = run
        if run.success:
            self._warned.discard(name)
        elif name not in self._warned:
            self._warned.add(name)
            log.warning("%s watchdog failed: %s (its readings are left out until it works)", name, run.error)
        return run

    def _due_now(self, name: str, now: float, interval: float) -> bool:
        if now >= self._due.get(name, 0.0):
            self._due[name] = now + interval
            return True
        return False

    def _guard(self, name: str, fn: Callable[[], object]) -> None:
        """Retention and the status file never take the supervisor (and so the capture) down."""
        try:
            fn()
            self._warned.discard(name)
        except Exception as exc:  # noqa: BLE001 (boundary: any failure)
            if name not in self._warned:
                self._warned.add(name)
                log.warning("%s failed: %s: %s", name, exc.__class__.__name__, exc)

    # -- writers -----------------------------------------------------------------------------------

    def _supervise_writer(self, slot: WriterSlot, now: float) -> None:
        proc = slot.proc
        if proc.running():
            reason = proc.stall_reason(now)
            if reason:
                log.warning("writer %s stalled (%s): restarting", proc.interface, reason)
                result = proc.stop(self.cfg.supervisor.stop_timeout, "stalled")
                self._schedule_restart(slot, time.monotonic(), f"stalled: {reason}", result)
            return
        if slot.restart_at is None:  # it was running and is gone
            result = proc.reap()
            if result is None:
                return
            if slot.fatal_on_bad_start and slot.starts == 1 and result.returncode == 2 and not proc.seen_stats:
                # Bad flag, filter or interface: restarting cannot help; say why and stop.
                msg = result.stderr_tail[-1] if result.stderr_tail else "exited with status 2"
                self._fatal = SluiceError(f"writer {proc.interface}: {writer_log_level(msg)[1]}", 2)
                return
            self._schedule_restart(slot, now, describe_exit(result), result)
            return
        if now >= slot.restart_at:
            self._start_writer(slot, now)

    def _schedule_restart(self, slot: WriterSlot, now: float, why: str, result: RunResult | None) -> None:
        ran = now - slot.proc.started_mono
        if ran >= self.cfg.supervisor.backoff_reset:
            slot.failures = 0
        slot.failures += 1
        sup = self.cfg.supervisor
        delay = backoff_delay(slot.failures, sup.backoff_initial, sup.backoff_max)
        slot.restart_at = now + delay
        slot.restart_reason = why
        assert self.journal is not None
        self.journal.append("writer_exit", interface=slot.proc.interface, reason=why, ran_seconds=round(ran, 3),
                            returncode=result.returncode if result else None, restart_in_seconds=delay)
        log.warning("writer %s: %s; restarting in %gs", slot.proc.interface, why, delay)

    def _start_writer(self, slot: WriterSlot, now: float) -> None:
        proc = slot.proc
        assert self.journal is not None
        proc.cpus = resolve_worker_cpus(self.cfg.capture.worker_cpus, self._tuned_cpus.get(proc.interface),
                                        self.cfg.capture.workers)
        try:
            proc.start()
        except OSError as exc:
            self._schedule_restart(slot, now, f"cannot start: {exc}", None)
            return
        slot.starts += 1
        if slot.starts == 1:
            self.journal.append("writer_start", interface=proc.interface, pid=proc.pid)
        else:
            proc.restarts += 1
            self.journal.append("writer_restart", interface=proc.interface, pid=proc.pid,
                                reason=slot.restart_reason, restarts=proc.restarts)
        slot.restart_at = None

    def _journal_drops(self) -> None:
        assert self.journal is not None
        for ifname, slot in self.slots.items():
            totals = slot.proc.totals()
            now = (totals["kernel_drops"], totals["writer_drops"])
            before = self._last_drops.get(ifname, (0, 0))
            if now != before and (now[0] > before[0] or now[1] > before[1]) and self._due_now(f"drops-{ifname}",
                                                                                           time.monotonic(), 5.0):
                self.journal.append("drops", interface=ifname, kernel_drops=now[0] - before[0],
                                    writer_drops=now[1] - before[1], kernel_drops_total=now[0],
                                    writer_drops_total=now[1])
                self._last_drops[ifname] = now
            st = slot.proc.state()
            if st.disk_error != self._last_disk_error.get(ifname):
                self._last_disk_error[ifname] = st.disk_error
                self.journal.append("disk_error" if st.disk_error else "disk_error_cleared", interface=ifname,
                                    error=st.disk_error)

    # -- watchdogs ---------------------------------------------------------------------------------

    def _retention(self) -> None:
        ret = self.cfg.retention
        # What the disk fills in two retention intervals at the measured rate: the floor must hold
        # until the next check, not only right after this one.
        disk = self.watchdogs["disk"]
        assert isinstance(disk, disk_wd.DiskWatchdog)
        # The disk watchdog's rate is a statvfs delta over its 5 s period: a flood that began a
        # second ago is in the writers' own rates (their stats lines) long before it is there.
        writers_rate = sum(slot.proc.state().bytes_per_second for slot in self.slots.values())
        headroom = int(max(disk.rate.rate, writers_rate) * ret.interval * 2)
        result = enforce_retention(self.cfg.spool, ret.min_free, ret.margin, self.journal, ret.min_age,
                                   headroom=headroom, require_backup=bool(self.cfg.pipeline.backup))
        self._retention_waiting_for_backup = result.waiting_for_backup_bytes  # issue 15: never before backup
        if result.waiting_for_backup_bytes:
            log.warning("retention: %d file(s), %d bytes not backed up yet hold the spool under its floor",
                        result.waiting_for_backup_files, result.waiting_for_backup_bytes)
        if result.other_bytes is not None:
            self._other_bytes = result.other_bytes
        if result.blocked != self._retention_blocked:
            self._retention_blocked = result.blocked
            assert self.journal is not None
            if result.blocked:
                log.error("retention: other files (%d bytes) fill %s beyond the free-space floor: no capture "
                          "is deleted for them; free the space", result.other_bytes, self.cfg.spool)
                self.journal.append("retention_blocked", other_bytes=result.other_bytes,
                                    missing_bytes=result.short_bytes)
            else:
                log.info("retention: the spool is no longer full of other files")
                self.journal.append("retention_unblocked")
        if result.deleted:
            self._retention_files += len(result.deleted)
            self._retention_bytes += result.freed_bytes
            self._freed_since_disk_check += result.freed_bytes
            log.info("retention: deleted %d file(s), %d bytes", len(result.deleted), result.freed_bytes)

    def build_snapshot(self) -> Snapshot:
        now = time.time()
        disk = self.watchdogs["disk"]
        files = disk.files if isinstance(disk, disk_wd.DiskWatchdog) else []
        writers = []
        for slot in self.slots.values():
            st = slot.proc.state()
            writers.append(WriterSnapshot(**asdict(st),
                                          newest_file_age_seconds=newest_file_age(st, files, self.cfg.host, now),
                                          restart_reason=slot.restart_reason if slot.starts > 1 else None))
        return Snapshot(
            version=__version__, ts=now, pid=os.getpid(), started=self.started_at,
            state_interval=self.cfg.supervisor.state_interval, config=self.config_path,
            host=self.cfg.host, spool=str(self.cfg.spool), metrics_port=self.metrics.port if self.metrics else None,
            metrics_listen="{}:{}".format(*self.cfg.metrics.listen), writers=writers,
            retention=RetentionSnapshot(self._retention_files, self._retention_bytes, self._retention_blocked,
                                        self._other_bytes, str(self.cfg.retention.min_free),
                                        waiting_for_backup_bytes=self._retention_waiting_for_backup),
            watchdogs=dict(self.runs))

    def publish(self) -> None:
        snap = self.build_snapshot()
        with self._lock:
            self._snapshot = snap
        write_state(self.cfg.state_path, snapshot_to_json(snap))

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    # -- reload and shutdown -----------------------------------------------------------------------

    def reload(self) -> None:
        assert self.journal is not None
        if not self.config_path:
            return
        try:
            new = config_mod.load(self.config_path)
            config_mod.check_on_this_machine(new)
        except Exception as exc:  # noqa: BLE001 (boundary: no config file may stop the capture)
            error = str(exc) if isinstance(exc, SluiceError) else \
                f"config {self.config_path}: cannot be read: {exc.__class__.__name__}"
            log.error("reload: %s (keeping the running config)", error)
            self.journal.append("config_reload_failed", error=error)
            return
        changed = sorted(f"{s}.{k}" for s in new.sections for k in new.sections[s]
                         if new.sections[s][k] != self.cfg.sections[s][k])
        try:
            missing = [i for i in new.interfaces if not Path("/sys/class/net", i).exists()]
            if missing:
                raise SluiceError(f"interface {missing[0]}: no such interface (in this network namespace)", 2)
            binary = config_mod.find_capture_binary(new)
        except SluiceError as exc:
            log.error("reload: %s (keeping the running config)", exc)
            self.journal.append("config_reload_failed", error=str(exc))
            return
        self.journal.append("config_reload", changed=changed)
        log.info("config reloaded: %s", ", ".join(changed) or "no change")
        if any(c.startswith("metrics.") for c in changed):
            log.warning("metrics.listen changes take effect at the next start")
        writer_keys = [c for c in changed if c.startswith(("capture.", "privacy.")) or c == "supervisor.stats_interval"]
        old = self.cfg
        self.cfg = new
        self.binary = binary
        for watchdog in self.watchdogs.values():
            watchdog.reconfigure(new)
        self._due.clear()
        if not writer_keys:
            for slot in self.slots.values():
                slot.proc.cfg = new
            return
        if new.spool != old.spool or new.host != old.host or new.sections["capture"]["user"] != \
                old.sections["capture"]["user"] or new.sections["capture"]["readers_group"] != \
                old.sections["capture"]["readers_group"]:
            spoolperm.prepare_capture_dir(new)
            self.journal.close()
            self.journal = Journal(new.journal_path)
            self.stats_log.close()
            self.stats_log = StatsLog(new.spool / "stats")
        # The writer's flags changed: restart each writer with the new ones (interfaces may come or go).
        now = time.monotonic()
        for ifname, slot in list(self.slots.items()):
            slot.proc.stop(new.supervisor.stop_timeout, "config reload")
            if ifname not in new.interfaces:
                self.journal.append("writer_removed", interface=ifname)
                del self.slots[ifname]
                continue
            slot.proc.cfg = new
            slot.proc.binary = binary
            slot.restart_at = now
            slot.restart_reason = "config reload"
            slot.failures = 0
        for ifname in new.interfaces:
            if ifname not in self.slots:
                self.slots[ifname] = self._make_slot(ifname)

    def shutdown(self) -> None:
        stop_timeout = self.cfg.supervisor.stop_timeout
        for slot in self.slots.values():
            slot.proc.terminate()
        for slot in self.slots.values():
            result = slot.proc.stop(stop_timeout, "supervisor stopping")
            if result is not None and self.journal is not None:
                self.journal.append("writer_stop", interface=slot.proc.interface, returncode=result.returncode)
            slot.restart_at = 0.0
        if self.journal is not None:
            self.run_watchdog("disk")  # the files the writers just closed
            try:
                self.publish()
            except OSError:
                pass
            self.journal.append("supervisor_stop", pid=os.getpid())
            self.journal.close()
        self.stats_log.close()
        if self.metrics is not None:
            self.metrics.stop()


def write_state(path: Path, snapshot: dict[str, Any]) -> None:
    """status.json: replaced atomically, or rewritten in place on a full disk (status.write_state)."""
    status_mod.write_state(path, json.dumps(snapshot, default=str, indent=1))


def supervise(config_path: str) -> int:
    os.umask(spoolperm.UMASK)  # the journal, status and catalog: nothing for others, as the captures
    cfg = config_mod.load(config_path)
    config_mod.check_on_this_machine(cfg)
    sup = Supervisor(cfg, config_path)
    sup.install_signal_handlers()
    return sup.run()
