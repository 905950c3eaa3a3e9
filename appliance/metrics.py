"""Prometheus metrics of `sluice supervise`, rendered from the supervisor's typed snapshot.

At each scrape a custom collector turns the current Snapshot into the metric families listed in
monitoring/METRICS.md: the writers' counters and gauges, retention, the build, and for every
watchdog its own families (declared by the watchdog, filled from its last reading) plus
sluice_watchdog_success and sluice_watchdog_duration_seconds. A watchdog whose last check failed
exports its families without samples: never the previous reading as if it were fresh. Counters
come from totals the supervisor carries across writer restarts, so they never go backwards. The
supervisor's own process metrics (process_*) come from prometheus-client's process collector.
The HTTP server is prometheus-client's own.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app, start_http_server

from appliance.snapshot import Snapshot, WriterSnapshot
from appliance.watchdogs import Family, load_all
from appliance.webconfig import WebConfig


def _num(value: float | None, none: float = math.inf) -> float:
    """A snapshot number for Prometheus: None stands for +Inf unless told otherwise."""
    return none if value is None else float(value)


def _family(f: Family) -> Metric:
    kind = CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily
    return kind(f.name, f.doc, labels=list(f.labels))


WRITER_COUNTERS = (
    ("sluice_capture_packets", "packets", "packets the writer received from the kernel ring"),
    ("sluice_capture_bytes", "bytes", "bytes (wire length) of those packets"),
    ("sluice_capture_kernel_drops", "kernel_drops", "packets the kernel dropped (ring full)"),
    ("sluice_capture_writer_drops", "writer_drops", "packets the writer dropped (buffers full, disk)"),
    ("sluice_capture_bytes_written", "bytes_written", "bytes written to capture files"),
    ("sluice_writer_files_closed", "files_closed", "capture files closed and renamed"),
)
def _timestamp(now: float, age: float | None) -> float:
    """An event's Unix time from its age (Prometheus' guide: export when, not how long ago);
    0 when it never happened."""
    if age is None or math.isinf(age):
        return 0.0
    return now - age


WRITER_GAUGES: tuple[tuple[str, str, Callable[[WriterSnapshot, float], float]], ...] = (
    ("sluice_capture_drop_ratio", "drops / (packets + kernel drops) over the last interval",
     lambda w, now: w.drop_ratio),
    ("sluice_capture_ring_fill_ratio", "fill of the kernel ring, 0..1", lambda w, now: w.ring_fill),
    ("sluice_capture_buffer_fill_ratio", "fill of the writer's staging buffers, 0..1", lambda w, now: w.buffer_fill),
    ("sluice_capture_burst_seconds", "seconds of line rate the writer's ring and buffers hold (NaN: unknown)",
     lambda w, now: math.nan if w.burst_seconds is None else w.burst_seconds),
    ("sluice_writer_up", "1 while the writer runs and sends stats", lambda w, now: float(w.up)),
    ("sluice_writer_newest_file_timestamp_seconds", "Unix time the newest closed file was closed (0: none yet)",
     lambda w, now: _timestamp(now, w.newest_file_age_seconds)),
    ("sluice_writer_disk_error", "1 while the writer reports a disk error",
     lambda w, now: float(bool(w.disk_error))),
)


def writer_families(writers: list[WriterSnapshot], now: float) -> list[Metric]:
    fams: list[Metric] = []
    for name, key, doc in WRITER_COUNTERS:
        fam = CounterMetricFamily(name, doc, labels=["interface"])
        for w in writers:
            fam.add_metric([w.interface], w.totals.get(key, 0))
        fams.append(fam)
    restarts = CounterMetricFamily("sluice_writer_restarts", "restarts of the writer by the supervisor",
                                   labels=["interface"])
    for w in writers:
        restarts.add_metric([w.interface], w.restarts)
    fams.append(restarts)
    for name, doc, value in WRITER_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["interface"])
        for w in writers:
            gauge.add_metric([w.interface], value(w, now))
        fams.append(gauge)
    return fams


def watchdog_families(snapshot: Snapshot) -> list[Metric]:
    success = GaugeMetricFamily("sluice_watchdog_success", "1 when the watchdog's last check worked, 0 when it "
                                "failed (its metrics are then left out)", labels=["watchdog"])
    duration = GaugeMetricFamily("sluice_watchdog_duration_seconds", "how long the watchdog's last check took",
                                 labels=["watchdog"])
    fams: list[Metric] = [success, duration]
    for name, cls in sorted(load_all().items()):
        own = {f.name: _family(f) for f in cls.families}
        run = snapshot.watchdogs.get(name)
        if run is not None:
            success.add_metric([name], 1.0 if run.success else 0.0)
            duration.add_metric([name], run.duration_seconds)
            if run.reading is not None:
                for sample in cls.samples(run.reading):
                    own[sample.family].add_metric(list(sample.labels), sample.value)
        fams.extend(own.values())
    return fams


def appliance_families(snapshot: Snapshot) -> list[Metric]:
    ret = snapshot.retention
    files = CounterMetricFamily("sluice_retention_deleted_files",
                                "capture files deleted to keep the free-space floor")
    files.add_metric([], ret.deleted_files_total)
    nbytes = CounterMetricFamily("sluice_retention_deleted_bytes", "bytes those files held")
    nbytes.add_metric([], ret.deleted_bytes_total)
    blocked = GaugeMetricFamily("sluice_retention_blocked",
                                "1 while other files take half or more of the spool's space above the free-space "
                                "floor and free space is under it (no capture is deleted for them)")
    blocked.add_metric([], 1.0 if ret.blocked else 0.0)
    other = GaugeMetricFamily("sluice_spool_other_bytes",
                              "bytes on the spool filesystem that are neither captures nor files being written "
                              "(as last measured, when free space was under the floor)")
    other.add_metric([], float(ret.other_bytes))
    waiting = GaugeMetricFamily("sluice_retention_waiting_for_backup_bytes",
                                "bytes of capture files retention may not delete yet because they are not backed "
                                "up, while the spool is under its free-space floor (0 otherwise)")
    waiting.add_metric([], float(ret.waiting_for_backup_bytes))
    info = GaugeMetricFamily("sluice_build_info", "always 1; labels version", labels=["version"])
    info.add_metric([snapshot.version], 1.0)
    return [files, nbytes, blocked, other, waiting, info]


def families(snapshot: Snapshot) -> list[Metric]:
    return [*writer_families(snapshot.writers, snapshot.ts), *watchdog_families(snapshot),
            *appliance_families(snapshot)]


class SnapshotCollector:
    """A prometheus-client collector over whatever snapshot the provider returns at scrape time."""

    def __init__(self, provider: Callable[[], Snapshot]) -> None:
        self._provider = provider

    def collect(self) -> Iterator[Metric]:
        yield from families(self._provider())

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families are known only at scrape time


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _with_basic_auth(app: Any, web: WebConfig) -> Any:
    """The WSGI app behind basic auth: 401 with a challenge unless a configured user signs in."""
    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if web.authorized(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="sluice"'),
                                            ("Content-Type", "text/plain; charset=utf-8")])
        return [b"Unauthorized\n"]
    return guarded


class MetricsServer:
    """/metrics on the configured address, served by prometheus-client on its own thread; with a
    web config (appliance/webconfig.py), over TLS and/or behind basic auth."""

    def __init__(self, provider: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(provider))
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, _cpu_seconds, _open_fds...
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int, web: WebConfig | None = None) -> int:
        if web is None:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        else:
            self._server, self._thread = self._start_guarded(host, port, web)
        self.port = int(self._server.server_address[1])
        return self.port

    def _start_guarded(self, host: str, port: int, web: WebConfig) -> tuple[Any, threading.Thread]:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

        class Server(ThreadingWSGIServer):
            address_family = family

        server = make_server(host, port, _with_basic_auth(make_wsgi_app(self.registry), web), Server,
                             handler_class=_QuietHandler)
        ctx = web.ssl_context()
        if ctx is not None:
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        return server, thread

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
