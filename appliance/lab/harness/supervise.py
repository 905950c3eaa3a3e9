"""`sluice supervise` in a network namespace, ready when its status file says so."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError
from appliance.lab import netns

REPO = Path(__file__).resolve().parents[3]


def writers_up(state: dict[str, Any]) -> bool:
    """Every writer in the status has sent stats."""
    return all(w.get("up") for w in state.get("writers", []))


def writers_and_disk_up(state: dict[str, Any]) -> bool:
    """The writers are up and the disk watchdog has a first reading."""
    return writers_up(state) and bool(state.get("watchdogs", {}).get("disk"))


class Supervise:
    """`ip netns exec NS python -m appliance.cli supervise --config FILE`, its output in FILE.log;
    its state is the status file SPOOL/status.json. Stopped with SIGTERM whatever happens."""

    def __init__(self, ns: str, config: Path, spool: Path, log: Path | None = None,
                 wrapper: list[str] | None = None) -> None:
        """wrapper: a program that runs it, e.g. strace (then pid is the wrapper's)."""
        self.ns, self.config, self.spool = ns, config, spool
        self.log = log or config.with_suffix(".log")
        self.wrapper = wrapper or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "supervise was not started"
        return self.proc.pid

    def start(self, wait_up: bool = True, ready: Callable[[dict[str, Any]], bool] = writers_and_disk_up,
              timeout: float = 20) -> Supervise:
        """Start it; with wait_up return once ready(status) is true (SluiceError if it is not in time)."""
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                netns.exec_argv(self.ns, [*self.wrapper, sys.executable, "-m", "appliance.cli", "supervise",
                                          "--config", str(self.config)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        if wait_up:
            try:
                self.wait_for(ready, timeout, "writers up")
            except BaseException:
                self.stop()
                raise
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def last_log_line(self) -> str:
        lines = self.stderr().strip().splitlines()
        return lines[-1] if lines else "no output"

    def state(self) -> dict[str, Any]:
        """The status file as it is now ({} before the first one)."""
        try:
            return json.loads((self.spool / "status.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The first status for which predicate is true; SluiceError if supervise ends or time runs out.
        The status file is rewritten every state_interval: polled, as there is nothing to block on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SluiceError(f"sluice supervise exited with {self.proc.returncode} waiting for {what}: "
                                  f"{self.stderr()[-2000:]}", 1)
            s = self.state()
            if s and predicate(s):
                return s
            time.sleep(0.1)
        raise SluiceError(f"no {what} within {timeout:g} s; state {json.dumps(self.state())[:2000]}; "
                          f"log ({self.log}) {self.stderr()[-2000:]}", 1)

    def wait_quiet(self, timeout: float = 20) -> dict[str, Any]:
        """Until two status files in a row (written after this call) count the same packets for every
        writer: the writers have taken all that arrived."""
        seen: list[tuple[float, list[int]]] = []
        since = self.state().get("ts", 0.0)

        def quiet(state: dict[str, Any]) -> bool:
            if state.get("ts", 0.0) <= (seen[-1][0] if seen else since):
                return False  # the same file again
            counts = [w["totals"]["packets"] for w in state.get("writers", [])]
            same = bool(seen) and counts == seen[-1][1]
            seen.append((state["ts"], counts))
            return same

        return self.wait_for(quiet, timeout, "the writers quiet")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; killed (and SluiceError) if it is not done within timeout s."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise SluiceError(f"sluice supervise did not stop within {timeout:g} s: {self.stderr()[-2000:]}",
                                  1) from None
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
