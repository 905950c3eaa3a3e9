"""Helpers for the conns tests: `sluice conns --log` as a real process in a lab host's namespace."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from appliance.lab import netns
from tests.conftest import REPO

SLUICE = [sys.executable, "-m", "appliance.cli"]


def sluice_argv(*args: str) -> list[str]:
    return [*SLUICE, *args]


class ConnsAgent:
    """`sluice conns --log FILE` running in namespace ns; events() parses what it logged."""

    def __init__(self, ns: str, log: Path, interval: float = 0.2, extra: list[str] | None = None) -> None:
        self.log = log
        argv = netns.exec_argv(ns, sluice_argv("conns", "--log", str(log), "--interval", str(interval),
                                               *(extra or [])))
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.interval = interval
        self.wait_for(lambda e: e["event"] == "start")
        # the first dump follows the start event, and no event says it is done: one dump's time
        time.sleep(interval if interval < 1 else 0.5)

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_for(self, pred: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if pred(e):
                    return e
            if self.proc.poll() is not None:
                raise AssertionError(f"sluice conns exited {self.proc.returncode}: {self.proc.stderr.read()}")
            time.sleep(0.05)
        raise AssertionError(f"no such event in {self.log} after {timeout} s")

    def wait_quiet(self, timeout: float = 20) -> None:
        """Until the log has not grown for two dump intervals: the agent has logged what happened."""
        deadline = time.monotonic() + timeout
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_size = self.log.stat().st_size if self.log.exists() else 0
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= 2 * min(self.interval, 1.0):
                return
            time.sleep(0.05)  # a log file, polled
        raise AssertionError(f"{self.log} still growing after {timeout} s")

    def stop(self) -> list[dict[str, Any]]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        assert rc == 0, err
        events = self.events()
        assert events[-1]["event"] == "stop"
        return events


def spawn(ns: str, argv: list[str], stdin: int | None = None) -> subprocess.Popen[str]:
    """A real program in ns; `ip netns exec` execs it in place, so the Popen pid is the program's."""
    return subprocess.Popen(netns.exec_argv(ns, argv), stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args}: {err}"
    return out


def server_pid(ns: str, comm: str) -> int:
    """The pid of the lab server named comm in namespace ns."""
    for pid in netns.pids_in(ns):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                return pid
        except OSError:
            continue
    raise AssertionError(f"no {comm} in {ns}")
