"""A real `sluice supervise` inside a network namespace, for the supervisor's integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from appliance.lab import netns
from tests.conftest import REPO, SLUICE_CAPTURE

FAST = """
[supervisor]
stats_interval = 0.5
stall_timeout = 5
backoff_initial = 1
backoff_max = 4
stop_timeout = 10
state_interval = 0.5
[watchdogs]
interval = 1
smart = false
span_dead_seconds = 5
"""


def write_config(path: Path, interface: str, spool: Path, extra: str = "", listen: str = "127.0.0.1:0") -> Path:
    """A config with test-friendly intervals; `extra` adds or overrides whole sections."""
    sections = {"capture": f'interfaces = ["{interface}"]\nspool = "{spool}"\nhost = "lab"\n'
                           f'binary = "{SLUICE_CAPTURE}"\nring_mb = 8\nbuffer_mb = 16\n',
                "metrics": f'listen = "{listen}"\n'}
    text = "".join(f"[{name}]\n{body}" for name, body in sections.items())
    path.write_text(text + FAST + extra)
    return path


class Supervise:
    """`ip netns exec NS python -m appliance.cli supervise --config FILE`, stopped whatever happens."""

    def __init__(self, ns: str, config: Path, spool: Path) -> None:
        self.ns, self.config, self.spool = ns, config, spool
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_up: bool = True) -> Supervise:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                netns.exec_argv(self.ns, [sys.executable, "-m", "appliance.cli", "supervise", "--config",
                                          str(self.config)]),
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        if wait_up:
            self.wait_for(lambda s: all(w["up"] for w in s["writers"]) and s["watchdogs"].get("disk"), 20,
                          "writers up")
        return self

    def stderr(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.spool / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_for(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"supervise exited {self.proc.returncode} waiting for {what}: {self.stderr()}")
            s = self.state()
            if s and predicate(s):
                return s
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout}s; state {json.dumps(self.state())[:2000]}; "
                             f"log {self.stderr()[-2000:]}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, fetched from inside the namespace with curl."""
        port = self.state()["metrics_port"]
        out = netns.run_in(self.ns, ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/metrics"]).stdout
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(out) for s in f.samples}

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"supervise did not stop within {timeout}s: {self.stderr()[-2000:]}") \
                    from None
        return self.proc.returncode

    def __enter__(self) -> Supervise:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def capture_files(spool: Path) -> list[Path]:
    """Capture files, closed or still .part: not the catalog's index sidecars (SPOOL/.index/,
    FILE.pcapng.json) or anything else hidden."""
    from appliance.watchdogs.disk import CAPTURE_SUFFIXES

    suffixes = CAPTURE_SUFFIXES + tuple(s + ".part" for s in CAPTURE_SUFFIXES)
    return sorted(p for p in spool.rglob("*") if p.is_file() and p.name.endswith(suffixes)
                  and not any(part.startswith(".") for part in p.relative_to(spool).parts))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
