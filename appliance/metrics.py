"""Prometheus metrics of `sluice supervise`, rendered from the supervisor's snapshot.

The supervisor keeps one snapshot (a plain JSON-able dict, also written to status.json for
`sluice status`); a custom collector turns it into the metric families listed in
monitoring/METRICS.md at each scrape. Counters come from totals the supervisor already carries
across writer restarts, so they never go backwards. The HTTP server is prometheus-client's own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server

from appliance import pipeline_metrics
from appliance.selftest.report import metric_families as selftest_families

Snapshot = dict[str, Any]


def _num(value: Any, none: float = math.inf) -> float:
    """A snapshot number for Prometheus: None stands for +Inf (JSON has no infinity)."""
    if value is None:
        return none
    return float(value)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels or [])


def writer_families(writers: list[dict[str, Any]]) -> list[Metric]:
    counters = [
        ("sluice_capture_packets", "packets", "packets the writer received from the kernel ring"),
        ("sluice_capture_bytes", "bytes", "bytes (wire length) of those packets"),
        ("sluice_capture_kernel_drops", "kernel_drops", "packets the kernel dropped (ring full)"),
        ("sluice_capture_writer_drops", "writer_drops", "packets the writer dropped (buffers full, disk)"),
        ("sluice_capture_bytes_written", "bytes_written", "bytes written to capture files"),
        ("sluice_writer_files_closed", "files_closed", "capture files closed and renamed"),
    ]
    fams: list[Metric] = []
    for name, key, doc in counters:
        fam = _counter(name, doc, ["interface"])
        for w in writers:
            fam.add_metric([w["interface"]], w["totals"][key])
        fams.append(fam)
    restarts = _counter("sluice_writer_restarts", "restarts of the writer by the supervisor", ["interface"])
    gauges = {
        "sluice_capture_drop_ratio": ("drop_ratio", "drops / (packets + kernel drops) over the last interval"),
        "sluice_capture_ring_fill_ratio": ("ring_fill", "fill of the kernel ring, 0..1"),
        "sluice_capture_buffer_fill_ratio": ("buffer_fill", "fill of the writer's staging buffers, 0..1"),
        "sluice_capture_burst_seconds": ("burst_seconds",
                                         "seconds of line rate the writer's ring and buffers hold (NaN: unknown)"),
        "sluice_writer_up": ("up", "1 while the writer runs and sends stats"),
        "sluice_writer_newest_file_age_seconds": ("newest_file_age_seconds", "age of the newest closed file"),
        "sluice_writer_disk_error": ("disk_error", "1 while the writer reports a disk error"),
    }
    gauge_fams = {name: _gauge(name, doc, ["interface"]) for name, (_k, doc) in gauges.items()}
    for w in writers:
        restarts.add_metric([w["interface"]], w["restarts"])
        for name, (key, _doc) in gauges.items():
            value = w.get(key)
            if key in ("up",):
                value = 1.0 if value else 0.0
            elif key == "disk_error":
                value = 1.0 if value else 0.0
            elif key == "burst_seconds" and value is None:
                value = math.nan  # the link's speed is unknown
            gauge_fams[name].add_metric([w["interface"]], _num(value))
    return [*fams, restarts, *gauge_fams.values()]


def disk_families(disk: dict[str, Any] | None) -> list[Metric]:
    if not disk:
        return []
    spec = [
        ("sluice_disk_free_bytes", "free_bytes", "bytes free to unprivileged writers on the spool filesystem"),
        ("sluice_disk_size_bytes", "size_bytes", "size of the spool filesystem"),
        ("sluice_disk_free_inodes", "free_inodes", "free inodes"),
        ("sluice_disk_write_bytes_per_second", "write_bytes_per_second", "rate at which free space shrinks"),
        ("sluice_disk_full_eta_seconds", "full_eta_seconds", "seconds until full at that rate"),
        ("sluice_disk_read_only", "read_only", "1 when the spool filesystem is read-only"),
        ("sluice_spool_files", "spool_files", "closed capture files in the spool"),
        ("sluice_spool_oldest_file_age_seconds", "oldest_file_age_seconds", "age of the oldest capture file kept"),
    ]
    fams: list[Metric] = []
    for name, key, doc in spec:
        fam = _gauge(name, doc, ["path"])
        value = disk.get(key)
        if isinstance(value, bool):
            value = float(value)
        none = 0.0 if key == "oldest_file_age_seconds" else math.inf
        fam.add_metric([disk["path"]], _num(value, none))
        fams.append(fam)
    return fams


def raid_families(arrays: list[dict[str, Any]]) -> list[Metric]:
    spec = [
        ("sluice_raid_degraded", "degraded", "1 when the array runs with fewer members than it needs"),
        ("sluice_raid_failed_members", "failed_members", "members marked (F)"),
        ("sluice_raid_spare_members", "spare_members", "spare members"),
        ("sluice_raid_active_members", "active_members", "members in sync"),
        ("sluice_raid_sync_progress_ratio", "sync_progress", "resync/recovery progress 0..1 (1 when idle)"),
    ]
    fams: list[Metric] = []
    for name, key, doc in spec:
        fam = _gauge(name, doc, ["array"])
        for a in arrays:
            fam.add_metric([a["array"]], float(a[key]))
        fams.append(fam)
    return fams


def smart_families(devices: list[dict[str, Any]]) -> list[Metric]:
    fam = _gauge("sluice_smart_healthy", "1 when smartctl says the overall health test passed", ["device"])
    for d in devices:
        if d.get("healthy") is not None:
            fam.add_metric([d["device"]], 1.0 if d["healthy"] else 0.0)
    return [fam]


def time_families(t: dict[str, Any] | None) -> list[Metric]:
    if not t:
        return []
    sync = _gauge("sluice_time_synchronized", "1 when the kernel says the clock is synchronised")
    sync.add_metric([], 1.0 if t["synchronized"] else 0.0)
    offset = _gauge("sluice_time_offset_seconds", "estimated offset from true time")
    offset.add_metric([], float(t["offset_seconds"]))
    maxerr = _gauge("sluice_time_max_error_seconds", "adjtimex maxerror")
    maxerr.add_metric([], float(t["max_error_seconds"]))
    steps = _counter("sluice_time_steps", "clock steps seen (realtime moved against monotonic)")
    steps.add_metric([], float(t["steps_total"]))
    return [sync, offset, maxerr, steps]


def nic_families(nics: list[dict[str, Any]]) -> list[Metric]:
    link = _gauge("sluice_nic_link_up", "1 when the interface is up with carrier", ["interface"])
    changes = _counter("sluice_nic_carrier_changes", "carrier changes seen by the kernel", ["interface"])
    speed = _gauge("sluice_nic_speed_bits_per_second", "link speed (0 when unknown)", ["interface"])
    rx = _counter("sluice_nic_rx_packets", "packets received by the NIC", ["interface"])
    missed = _counter("sluice_nic_rx_missed", "packets the NIC missed (no buffer)", ["interface"])
    dropped = _counter("sluice_nic_rx_dropped", "packets dropped by the driver/stack", ["interface"])
    dead = _gauge("sluice_nic_span_dead", "1 when the link is up but no packet arrived for the configured time",
                  ["interface"])
    drift = _gauge("sluice_nic_tuning_drift", "1 when the setting differs from the capture profile",
                   ["interface", "setting"])
    for n in nics:
        i = [n["interface"]]
        link.add_metric(i, 1.0 if n["link_up"] else 0.0)
        changes.add_metric(i, n["carrier_changes"])
        speed.add_metric(i, n["speed_bps"])
        rx.add_metric(i, n["rx_packets"])
        missed.add_metric(i, n["rx_missed"])
        dropped.add_metric(i, n["rx_dropped"])
        dead.add_metric(i, 1.0 if n["span_dead"] else 0.0)
        for setting, drifted in sorted((n.get("drift") or {}).items()):
            drift.add_metric([n["interface"], setting], 1.0 if drifted else 0.0)
    return [link, changes, speed, rx, missed, dropped, dead, drift]


def appliance_families(snapshot: Snapshot) -> list[Metric]:
    ret = snapshot.get("retention", {})
    files = _counter("sluice_retention_deleted_files", "capture files deleted to keep the free-space floor")
    files.add_metric([], ret.get("deleted_files_total", 0))
    nbytes = _counter("sluice_retention_deleted_bytes", "bytes those files held")
    nbytes.add_metric([], ret.get("deleted_bytes_total", 0))
    waiting = _gauge("sluice_retention_waiting_for_backup_bytes",
                     "bytes of capture files retention may not delete yet because they are not backed up, "
                     "while the spool is under its free-space floor (0 otherwise)")
    waiting.add_metric([], ret.get("waiting_for_backup_bytes", 0))
    info = _gauge("sluice_build_info", "always 1; labels version", ["version"])
    info.add_metric([snapshot.get("version", "unknown")], 1.0)
    return [files, nbytes, waiting, info]


def update_families(u: dict[str, Any] | None) -> list[Metric]:
    """Firmware updates (appliance/update.py): what runs, what is pending, how updates ended."""
    if not u:
        return []
    info = _gauge("sluice_update_info", "always 1; the running release and the root slot GRUB booted",
                  ["version", "commit", "slot"])
    info.add_metric([u["version"], u["commit"], u["slot"]], 1.0)
    pending = _gauge("sluice_update_pending", "1 while an installed update has not yet proved itself")
    pending.add_metric([], 1.0 if u["pending"] else 0.0)
    fams: list[Metric] = [info, pending]
    for key, doc in (("installs", "bundles installed into the other slot"),
                     ("succeeded", "updates whose new slot captured and was marked good"),
                     ("rollbacks", "updates that failed and left the box on the previous slot")):
        fam = _counter(f"sluice_update_{key}", doc)
        fam.add_metric([], float(u[f"{key}_total"]))
        fams.append(fam)
    last = u.get("last")
    if last:
        ok = _gauge("sluice_update_last_succeeded", "1 when the last finished update succeeded, 0 when it "
                    "rolled back; labels say which", ["version", "slot"])
        ok.add_metric([str(last.get("version")), str(last.get("slot"))], 1.0 if last["result"] == "succeeded" else 0.0)
        at = _gauge("sluice_update_last_timestamp_seconds", "when the last update finished (unix time)")
        at.add_metric([], float(last.get("at") or 0))
        fams += [ok, at]
    return fams


def families(snapshot: Snapshot) -> list[Metric]:
    return [
        *writer_families(snapshot.get("writers", [])),
        *time_families(snapshot.get("time")),
        *disk_families(snapshot.get("disk")),
        *raid_families(snapshot.get("raid", [])),
        *smart_families(snapshot.get("smart", [])),
        *nic_families(snapshot.get("nic", [])),
        *appliance_families(snapshot),
        *update_families(snapshot.get("update")),
        *selftest_families(snapshot.get("selftest")),
        *pipeline_metrics.families(snapshot.get("pipeline")),
    ]


class SnapshotCollector:
    """A prometheus-client collector over whatever snapshot the provider returns at scrape time."""

    def __init__(self, provider: Callable[[], Snapshot]) -> None:
        self._provider = provider

    def collect(self) -> Iterator[Metric]:
        yield from families(self._provider())

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families are known only at scrape time


class MetricsServer:
    """/metrics on the configured address, served by prometheus-client on its own thread."""

    def __init__(self, provider: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(provider))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int) -> int:
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._server.server_address[1])
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
