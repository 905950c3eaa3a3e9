"""Real Prometheus, Alertmanager and node_exporter daemons for the monitoring tests.

Each runs on a free 127.0.0.1 port, either in the root namespace (ns=None) or inside a test's
network namespace (then it can scrape a `sluice supervise` listening on that namespace's
loopback), and is stopped whatever happens. HTTP goes through curl run in the same namespace.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from appliance.lab import netns
from tests.conftest import require_tool

T = TypeVar("T")
FREE_PORT = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"


def in_ns(ns: str | None, argv: list[str]) -> list[str]:
    return netns.exec_argv(ns, argv) if ns else argv


def free_port(ns: str | None) -> int:
    return int(subprocess.run(in_ns(ns, [sys.executable, "-c", FREE_PORT]), capture_output=True, text=True,
                              check=True).stdout)


def http(ns: str | None, url: str, method: str = "GET") -> Any:
    """The JSON document (or text) at url, or None when the server does not answer (yet)."""
    proc = subprocess.run(in_ns(ns, ["curl", "-sS", "--fail", "--max-time", "5", "-X", method, url]),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        return proc.stdout  # /-/ready and friends answer plain text


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"no {what} within {timeout:g}s (last: {str(last)[:1500]})")


@contextmanager
def daemon(ns: str | None, argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run argv (in ns) until the block ends; its output goes to log."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(in_ns(ns, argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Prometheus:
    def __init__(self, ns: str | None, port: int) -> None:
        self.ns, self.port = ns, port
        self.url = f"http://127.0.0.1:{port}"

    def query(self, promql: str) -> dict[str, Any]:
        """The raw API answer (status success/error) for an instant query."""
        doc = http(self.ns, f"{self.url}/api/v1/query?query={urllib.parse.quote(promql)}")
        if doc is None:  # curl --fail: a 4xx carries the error document; ask again without --fail
            proc = subprocess.run(in_ns(self.ns, ["curl", "-sS", "--max-time", "5",
                                                  f"{self.url}/api/v1/query?query={urllib.parse.quote(promql)}"]),
                                  capture_output=True, text=True)
            doc = json.loads(proc.stdout)
        return doc

    def vector(self, promql: str) -> list[dict[str, Any]]:
        doc = self.query(promql)
        assert doc["status"] == "success", f"{promql}: {doc}"
        return doc["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        doc = http(self.ns, f"{self.url}/api/v1/alerts") or {"data": {"alerts": []}}
        return doc["data"]["alerts"]


@contextmanager
def prometheus(ns: str | None, workdir: Path, config: str) -> Iterator[Prometheus]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(ns)
    (workdir / "prometheus.yml").write_text(config)
    argv = [require_tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
    with daemon(ns, argv, workdir / "prometheus.log") as proc:
        prom = Prometheus(ns, port)
        wait_for(lambda: proc.poll() is None and http(ns, f"{prom.url}/-/ready") is not None, 30,
                 f"ready Prometheus ({(workdir / 'prometheus.log').read_text()[-1500:]})")
        yield prom


class Alertmanager:
    def __init__(self, ns: str | None, port: int) -> None:
        self.ns, self.port = ns, port
        self.url = f"http://127.0.0.1:{port}"

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: every alert it holds, active, silenced or inhibited."""
        return http(self.ns, f"{self.url}/api/v2/alerts") or []

    def amtool(self, *args: str) -> str:
        proc = subprocess.run(in_ns(self.ns, [require_tool("amtool"), f"--alertmanager.url={self.url}", *args]),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@contextmanager
def alertmanager(ns: str | None, workdir: Path, config: str) -> Iterator[Alertmanager]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(ns)
    (workdir / "alertmanager.yml").write_text(config)
    # An empty cluster address turns clustering (a listener on every address) off.
    argv = [require_tool("prometheus-alertmanager"), f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address="]
    with daemon(ns, argv, workdir / "alertmanager.log") as proc:
        am = Alertmanager(ns, port)
        wait_for(lambda: proc.poll() is None and http(ns, f"{am.url}/-/ready") is not None, 30,
                 f"ready Alertmanager ({(workdir / 'alertmanager.log').read_text()[-1500:]})")
        yield am


class WebhookSink:
    """An HTTP server in this process that keeps every Alertmanager webhook it receives, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, path: str, status: str = "firing") -> set[tuple[str, str]]:
        """(alertname, instance) of every alert notified on path with that status."""
        return {(a["labels"]["alertname"], a["labels"].get("instance", ""))
                for p, doc in self.received if p == path for a in doc["alerts"] if a["status"] == status}
