"""`sluice conns`: the agent loop, its JSON Lines log, its metrics and the live table.

Every `interval` seconds: read the destroy notifications that are waiting, dump every socket,
update the table (tracker.py). Between dumps the loop sleeps in select() on the destroy socket,
so a socket freed between two dumps is logged within milliseconds of its end. The agent sees the
network namespace it runs in (`ip netns exec NS sluice conns ...` for another one).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server

from appliance.conns import live
from appliance.conns.sockets import DestroyListener, Dumper
from appliance.conns.tracker import Event, Tracker
from appliance.errors import SluiceError

LOG_VERSION = 1


class ConnsCollector:
    """The agent's metrics, read from the tracker at each scrape."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        a = self.agent
        with a.lock:
            by_state = a.tracker.by_state()
            events = dict(a.tracker.events)
            untracked = a.tracker.untracked
            overruns = a.listener.overruns if a.listener else 0
            dumps, scans = a.dumps, a.tracker.owners.scans
            dump_seconds = a.last_dump_seconds
        g = GaugeMetricFamily("sluice_conns_sockets", "sockets tracked now, by protocol and state",
                              labels=["proto", "state"])
        for (proto, state), n in sorted(by_state.items()):
            g.add_metric([proto, state], n)
        yield g
        c = CounterMetricFamily("sluice_conns_events", "socket events logged (opened, state, closed)",
                                labels=["event"])
        for kind, n in sorted(events.items()):
            c.add_metric([kind], n)
        yield c
        yield GaugeMetricFamily("sluice_conns_untracked_sockets",
                                "sockets of the last dump left untracked: the table is full", value=untracked)
        yield CounterMetricFamily("sluice_conns_destroy_overruns",
                                  "times the kernel dropped destroy notifications (receive buffer full)",
                                  value=overruns)
        yield CounterMetricFamily("sluice_conns_dumps", "sock_diag dumps made", value=dumps)
        yield CounterMetricFamily("sluice_conns_proc_scans", "scans of /proc/*/fd for new socket inodes",
                                  value=scans)
        yield GaugeMetricFamily("sluice_conns_dump_seconds", "time the last dump and update took",
                                value=dump_seconds)

    def describe(self) -> list[Metric]:
        return []


class Agent:
    def __init__(self, interval: float, emit: Callable[[Event], None], host: str | None = None,
                 max_sockets: int = 262144, destroy: bool = True) -> None:
        self.interval = interval
        self.host = host or socket.gethostname()
        self.lock = threading.Lock()
        self.tracker = Tracker(self.host, emit, max_sockets=max_sockets)
        self.dumper = Dumper()
        self.listener = DestroyListener() if destroy else None
        self.dumps = 0
        self.last_dump_seconds = 0.0
        self._stop = threading.Event()

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def _drain(self) -> None:
        if self.listener is None:
            return
        socks = self.listener.read()
        ts = time.time_ns()
        with self.lock:
            for s in socks:
                self.tracker.on_destroy(s, ts)

    def step(self) -> None:
        started = time.monotonic()
        self._drain()
        socks = self.dumper.dump()
        with self.lock:
            self.tracker.on_dump(socks, time.time_ns())
            self.dumps += 1
            self.last_dump_seconds = time.monotonic() - started

    def run(self, duration: float | None = None, on_step: Callable[[], None] | None = None) -> None:
        end = time.monotonic() + duration if duration is not None else None
        while not self._stop.is_set():
            self.step()
            if on_step is not None:
                on_step()
            next_dump = time.monotonic() + self.interval
            if end is not None:
                next_dump = min(next_dump, end)
            while not self._stop.is_set():
                left = next_dump - time.monotonic()
                if left <= 0:
                    break
                if self.listener is None:
                    self._stop.wait(min(left, 0.2))
                    continue
                if select.select([self.listener], [], [], min(left, 0.2))[0]:
                    self._drain()
            if end is not None and time.monotonic() >= end:
                self.step()  # a last look, so what ended in the last interval is logged
                break

    def close(self) -> None:
        self.dumper.close()
        if self.listener is not None:
            self.listener.close()


def host_addresses() -> list[str]:
    """The addresses of this network namespace: what a socket bound to 0.0.0.0 or :: listens on."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return sorted({str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr()
                       if a.get_attr("IFA_ADDRESS")})


def netns_id() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


class JsonLog:
    """One JSON object a line, flushed after every line (a reader tails it live).

    SIGHUP asks for the file to be reopened at the next line (after logrotate moved it away).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.out = open_log(path)
        self.reopen_requested = False

    def request_reopen(self, *_: Any) -> None:
        self.reopen_requested = True

    def __call__(self, event: Event) -> None:
        if self.reopen_requested and self.path != "-":
            self.reopen_requested = False
            self.out.close()
            self.out = open_log(self.path)
        self.out.write(json.dumps({"v": LOG_VERSION, **event}, separators=(",", ":")) + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.out is not sys.stdout:
            self.out.close()


def open_log(path: str) -> IO[str]:
    if path == "-":
        return sys.stdout
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise SluiceError(f"conns log {path}: {exc.strerror}") from None


def serve_metrics(agent: Agent, host: str, port: int) -> int:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConnsCollector(agent))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise SluiceError(f"metrics on {host}:{port}: {exc.strerror}") from None
    return int(server.server_address[1])


def run(interval: float, log_path: str | None, duration: float | None, metrics: tuple[str, int] | None,
        max_sockets: int, host: str | None) -> int:
    """The command: log events to log_path, or show the live table when log_path is None."""
    out = JsonLog(log_path) if log_path is not None else None
    emit: Callable[[Event], None] = out if out is not None else (lambda _e: None)
    agent = Agent(interval, emit, host=host, max_sockets=max_sockets)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, agent.stop)
    if out is not None:
        signal.signal(signal.SIGHUP, out.request_reopen)
    try:
        if metrics is not None:
            serve_metrics(agent, *metrics)
        start = {"event": "start", "ts_ns": time.time_ns(), "host": agent.host, "netns": netns_id(),
                 "addresses": host_addresses(), "interval_s": interval, "pid": os.getpid()}
        if out is not None:
            emit(start)
            agent.run(duration)
            emit({"event": "stop", "ts_ns": time.time_ns(), "host": agent.host,
                  "events": dict(agent.tracker.events), "untracked": agent.tracker.untracked,
                  "destroy_overruns": agent.listener.overruns if agent.listener else 0})
        else:
            screen = live.Screen(sys.stdout)
            agent.run(duration, on_step=lambda: screen.draw(agent))
            screen.close()
    except BrokenPipeError:
        pass  # the reader of `--log -` went away: nothing more to say
    finally:
        agent.close()
        if out is not None:
            out.close()
    return 0
