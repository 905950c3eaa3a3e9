"""`sluice supervise`: keeps one writer per capture interface alive, watches the box, exports
metrics, enforces retention, keeps the journal and the status file.

One loop on the main thread does everything but reading the writers' stats (a thread per
writer) and serving /metrics (prometheus-client's thread). Each pass: reap or restart writers
(exponential backoff, stall detection), run the watchdogs whose interval came, retention, then
publish a snapshot (metrics and status.json read it). SIGTERM/SIGINT stop the writers cleanly
and exit 0; SIGHUP reloads the config.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance import config as config_mod
from appliance.catalog import on_writer_record as catalog_file_closed
from appliance.config import Config
from appliance.errors import SluiceError
from appliance.gaps.statslog import StatsLog
from appliance.journal import Journal, last_record
from appliance.metrics import MetricsServer, Snapshot
from appliance.pipeline_metrics import read_state as read_pipeline_state
from appliance.retention import enforce as enforce_retention
from appliance.selftest.report import load_result as load_selftest
from appliance.update import update_status
from appliance.watchdogs import disk as disk_wd
from appliance.watchdogs import nic as nic_wd
from appliance.watchdogs import raid as raid_wd
from appliance.watchdogs import smart as smart_wd
from appliance.watchdogs import time as time_wd
from appliance.watchdogs import writer as writer_wd
from appliance.writer import RunResult, WriterProcess, resolve_worker_cpus, writer_log_level

log = logging.getLogger("sluice.supervisor")

TICK = 0.2
STATE_VERSION = 1


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
        self._reload = False
        self._lock = threading.Lock()
        self._snapshot: Snapshot = {"version": __version__, "writers": []}
        self._due: dict[str, float] = {}
        self._fill_rate = disk_wd.FillRate()
        self._freed_since_disk_check = 0
        self._steps = time_wd.StepDetector(cfg.get("watchdogs", "time_step_threshold"))
        self._span = nic_wd.SpanWatch(cfg.get("watchdogs", "span_dead_seconds"))
        self._tuning = nic_wd.TuningCheck(self._profile_args(cfg))
        self._readings: dict[str, Any] = {"disk": None, "time": None, "raid": [], "smart": [], "nic": {}}
        self._files: list[disk_wd.CaptureFile] = []
        self._retention_files = 0
        self._retention_bytes = 0
        self._retention_waiting_for_backup = 0
        self._last_drops: dict[str, tuple[int, int]] = {}
        self._last_disk_error: dict[str, str | None] = {}
        self._warned: set[str] = set()
        self._fatal: SluiceError | None = None
        self._tuned_cpus: dict[str, list[int]] = {}  # interface -> the RX IRQ CPUs `nic tune` chose
        self.started_at = time.time()

    # -- setup -----------------------------------------------------------------------------------

    @staticmethod
    def _profile_args(cfg: Config) -> dict[str, Any]:
        nic = cfg.sections["nic"]
        return {"rx_usecs": nic["rx_usecs"], "mtu": nic["mtu"], "hw_timestamps": nic["hw_timestamps"],
                "irq_cpus": nic["irq_cpus"]}

    def preflight(self) -> None:
        """Everything that must hold before a writer starts; each failure is one SluiceError line."""
        spool = self.cfg.spool
        try:
            self.cfg.capture_dir.mkdir(parents=True, exist_ok=True)
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
        host, port = self.cfg.get("metrics", "listen")
        self.metrics = MetricsServer(self.snapshot)
        try:
            bound = self.metrics.start(host, port)
        except OSError as exc:
            raise SluiceError(f"metrics listen {host}:{port}: cannot bind: {exc.strerror or exc}", 2) from None
        log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", bound)

    def _make_slot(self, ifname: str) -> WriterSlot:
        return WriterSlot(WriterProcess(self.cfg, ifname, self.binary, on_record=self._on_record))

    # -- the writers' records (called on their reader threads) -------------------------------------

    def _on_record(self, interface: str, record: dict[str, Any]) -> None:
        catalog_file_closed(self.cfg.spool, interface, record)  # queued: never waits
        kind = record.get("type")
        if kind in ("stats", "final"):
            self.stats_log.append(interface, record)  # for the gap ledger (sluice gaps)
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
            if self.cfg.get("nic", "tune"):
                for ifname in self.cfg.interfaces:
                    self._tune(ifname, "start")
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
                self._stop.wait(TICK)
        finally:
            self.shutdown()
        return 0

    def tick(self, now: float) -> None:
        for slot in list(self.slots.values()):
            self._supervise_writer(slot, now)
        self._journal_drops()
        interval = self.cfg.get("watchdogs", "interval")
        if self._due_now("retention", now, self.cfg.get("retention", "interval")):
            self._guard("retention", self._retention)
        if self._due_now("watchdogs", now, interval):
            self._guard("disk", self._check_disk)
            self._guard("time", self._check_time)
            self._guard("raid", self._check_raid)
            self._guard("nic", self._check_nics)
        if self.cfg.get("watchdogs", "smart") and self._due_now("smart", now,
                                                                 self.cfg.get("watchdogs", "smart_interval")):
            self._guard("smart", self._check_smart)
        # Drift means "differs from what tuning set": without tuning there is nothing to drift from.
        if self.cfg.get("nic", "tune") and self._due_now("drift", now, self.cfg.get("nic", "check_interval")):
            self._guard("drift", self._check_drift)
        if self._due_now("state", now, self.cfg.get("supervisor", "state_interval")):
            self._guard("status file", self.publish)  # a full spool must not stop supervision

    def _due_now(self, name: str, now: float, interval: float) -> bool:
        if now >= self._due.get(name, 0.0):
            self._due[name] = now + interval
            return True
        return False

    def _guard(self, name: str, fn: Any) -> None:
        """A watchdog never takes the supervisor (and so the capture) down: log once, go on."""
        try:
            fn()
            self._warned.discard(name)
        except Exception as exc:  # noqa: BLE001 (boundary: any watchdog failure)
            if name not in self._warned:
                self._warned.add(name)
                log.warning("%s watchdog failed: %s: %s", name, exc.__class__.__name__, exc)

    # -- writers -----------------------------------------------------------------------------------

    def _supervise_writer(self, slot: WriterSlot, now: float) -> None:
        proc = slot.proc
        if proc.running():
            reason = proc.stall_reason(now)
            if reason:
                log.warning("writer %s stalled (%s): restarting", proc.interface, reason)
                result = proc.stop(self.cfg.get("supervisor", "stop_timeout"), "stalled")
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
        if ran >= self.cfg.get("supervisor", "backoff_reset"):
            slot.failures = 0
        slot.failures += 1
        sup = self.cfg.sections["supervisor"]
        delay = backoff_delay(slot.failures, sup["backoff_initial"], sup["backoff_max"])
        slot.restart_at = now + delay
        slot.restart_reason = why
        assert self.journal is not None
        self.journal.append("writer_exit", interface=slot.proc.interface, reason=why, ran_seconds=round(ran, 3),
                            returncode=result.returncode if result else None, restart_in_seconds=delay)
        log.warning("writer %s: %s; restarting in %gs", slot.proc.interface, why, delay)

    def _start_writer(self, slot: WriterSlot, now: float) -> None:
        proc = slot.proc
        assert self.journal is not None
        proc.cpus = resolve_worker_cpus(self.cfg.get("capture", "worker_cpus"), self._tuned_cpus.get(proc.interface),
                                        self.cfg.get("capture", "workers"))
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
        ret = self.cfg.sections["retention"]
        # What the disk fills in two retention intervals at the measured rate: the floor must hold
        # until the next check, not only right after this one.
        headroom = int(self._fill_rate.rate * ret["interval"] * 2)
        result = enforce_retention(self.cfg.spool, ret["min_free"], ret["margin"], self.journal, ret["min_age"],
                                   headroom=headroom, require_backup=bool(self.cfg.get("pipeline", "backup")))
        self._retention_waiting_for_backup = result.waiting_for_backup_bytes  # issue 15: never before backup
        if result.waiting_for_backup_bytes:
            log.warning("retention: %d file(s), %d bytes not backed up yet hold the spool under its floor",
                        result.waiting_for_backup_files, result.waiting_for_backup_bytes)
        if result.deleted:
            self._retention_files += len(result.deleted)
            self._retention_bytes += result.freed_bytes
            self._freed_since_disk_check += result.freed_bytes
            log.info("retention: deleted %d file(s), %d bytes", len(result.deleted), result.freed_bytes)

    def _check_disk(self) -> None:
        reading = disk_wd.read(self.cfg.spool, self._fill_rate, self._freed_since_disk_check)
        self._freed_since_disk_check = 0
        self._files = disk_wd.capture_files(self.cfg.spool)
        previous = self._readings["disk"]
        if previous is not None and previous.read_only != reading.read_only and self.journal is not None:
            self.journal.append("disk_read_only" if reading.read_only else "disk_writable", path=reading.path)
        self._readings["disk"] = reading

    def _check_time(self) -> None:
        reading = time_wd.read(self._steps)
        if reading.step_seconds is not None and self.journal is not None:
            self.journal.append("time_step", step_seconds=round(reading.step_seconds, 6))
        self._readings["time"] = reading

    def _check_raid(self) -> None:
        wd = self.cfg.sections["watchdogs"]
        self._readings["raid"] = raid_wd.read_arrays(wd["mdstat"], wd["sys_block"]) if wd["raid"] else []

    def _check_smart(self) -> None:
        if not smart_wd.available():
            self._readings["smart"] = []
            return
        self._readings["smart"] = smart_wd.check(self.cfg.get("watchdogs", "smart_devices"))

    def _check_nics(self) -> None:
        self._readings["nic"] = {ifname: nic_wd.read(ifname, self._span) for ifname in self.cfg.interfaces}

    def _check_drift(self) -> None:
        for ifname in self.cfg.interfaces:
            drifts = self._tuning.check(ifname)
            if drifts and self.journal is not None:
                self.journal.append("nic_drift", interface=ifname,
                                    settings={str(getattr(d, "setting", d)): [str(getattr(d, "wanted", "")),
                                                                              str(getattr(d, "found", ""))]
                                              for d in drifts})
                if self.cfg.get("nic", "reapply_on_drift"):
                    self._tune(ifname, "drift")

    def _tune(self, ifname: str, why: str) -> None:
        report = self._tuning.tune(ifname)
        if report is not None:
            self._tuned_cpus[ifname] = list(getattr(report, "worker_cpus", []) or [])
        if report is not None and self.journal is not None:
            doc = report.to_dict() if hasattr(report, "to_dict") else str(report)
            self.journal.append("nic_tuned", interface=ifname, why=why, report=doc)

    # -- snapshot, status file ---------------------------------------------------------------------

    def build_snapshot(self) -> Snapshot:
        now = time.time()
        files = self._files
        writers = []
        for slot in self.slots.values():
            st = slot.proc.state()
            reading = writer_wd.read(st, files, self.cfg.host, now)
            w = asdict(st)
            w["newest_file_age_seconds"] = None if math.isinf(reading.newest_file_age_seconds) \
                else round(reading.newest_file_age_seconds, 3)
            w["restart_reason"] = slot.restart_reason if slot.starts > 1 else None
            writers.append(w)
        disk = self._readings["disk"]
        disk_doc = None
        if disk is not None:
            disk_doc = asdict(disk)
            disk_doc["full_eta_seconds"] = None if math.isinf(disk.full_eta_seconds) else disk.full_eta_seconds
            disk_doc["spool_files"] = len(files)
            disk_doc["oldest_file_age_seconds"] = round(now - files[0].mtime, 3) if files else None
            disk_doc["floor_bytes"] = self.cfg.get("retention", "min_free").bytes_for(disk.size_bytes)
        t = self._readings["time"]
        nic_docs = []
        for ifname, n in self._readings["nic"].items():
            d = asdict(n)
            d["drift"] = dict(self._tuning.drift.get(ifname, {}))
            nic_docs.append(d)
        return {
            "state_version": STATE_VERSION,
            "version": __version__,
            "ts": now,
            "pid": os.getpid(),
            "started": self.started_at,
            "config": self.config_path,
            "host": self.cfg.host,
            "spool": str(self.cfg.spool),
            "metrics_port": self.metrics.port if self.metrics else None,
            "metrics_listen": "{}:{}".format(*self.cfg.get("metrics", "listen")),
            "writers": writers,
            "disk": disk_doc,
            "time": asdict(t) if t is not None else None,
            "raid": [{"array": a.name, "state": a.state, "level": a.level, "degraded": a.degraded,
                      "failed_members": a.failed_members, "spare_members": a.spare_members,
                      "active_members": a.active_members, "raid_disks": a.raid_disks,
                      "sync_action": a.sync_action, "sync_progress": a.sync_progress}
                     for a in self._readings["raid"]],
            "smart": [asdict(s) for s in self._readings["smart"]],
            "nic": nic_docs,
            "retention": {"deleted_files_total": self._retention_files,
                          "deleted_bytes_total": self._retention_bytes,
                          "waiting_for_backup_bytes": self._retention_waiting_for_backup,
                          "min_free": str(self.cfg.get("retention", "min_free"))},
            "update": update_status(),
            "selftest": load_selftest(self.cfg.spool),  # the last `sluice selftest`, as metrics
            "pipeline": read_pipeline_state(self.cfg.spool),  # issue 15: the pipeline service's progress
        }

    def publish(self) -> None:
        snap = self.build_snapshot()
        with self._lock:
            self._snapshot = snap
        write_state(self.cfg.state_path, snap)

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
        except SluiceError as exc:
            log.error("reload: %s (keeping the running config)", exc)
            self.journal.append("config_reload_failed", error=str(exc))
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
        writer_keys = [c for c in changed if c.startswith("capture.") or c == "supervisor.stats_interval"]
        old = self.cfg
        self.cfg = new
        self.binary = binary
        self._steps.threshold = new.get("watchdogs", "time_step_threshold")
        self._span.dead_after = new.get("watchdogs", "span_dead_seconds")
        self._tuning.profile_args = self._profile_args(new)
        self._due.clear()
        if not writer_keys:
            for slot in self.slots.values():
                slot.proc.cfg = new
            return
        if new.spool != old.spool or new.host != old.host:
            new.capture_dir.mkdir(parents=True, exist_ok=True)
            self.journal.close()
            self.journal = Journal(new.journal_path)
            self.stats_log.close()
            self.stats_log = StatsLog(new.spool / "stats")
        # The writer's flags changed: restart each writer with the new ones (interfaces may come or go).
        now = time.monotonic()
        for ifname, slot in list(self.slots.items()):
            slot.proc.stop(new.get("supervisor", "stop_timeout"), "config reload")
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
        stop_timeout = self.cfg.get("supervisor", "stop_timeout")
        for slot in self.slots.values():
            slot.proc.terminate()
        for slot in self.slots.values():
            result = slot.proc.stop(stop_timeout, "supervisor stopping")
            if result is not None and self.journal is not None:
                self.journal.append("writer_stop", interface=slot.proc.interface, returncode=result.returncode)
            slot.restart_at = 0.0
        if self.journal is not None:
            self._guard("disk", self._check_disk)  # the files the writers just closed
            try:
                self.publish()
            except OSError:
                pass
            self.journal.append("supervisor_stop", pid=os.getpid())
            self.journal.close()
        self.stats_log.close()
        if self.metrics is not None:
            self.metrics.stop()


def write_state(path: Path, snapshot: Snapshot) -> None:
    """status.json, replaced atomically so `sluice status` never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(snapshot, default=str, indent=1))
    os.replace(tmp, path)


def supervise(config_path: str) -> int:
    cfg = config_mod.load(config_path)
    sup = Supervisor(cfg, config_path)
    sup.install_signal_handlers()
    return sup.run()
