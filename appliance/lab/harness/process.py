"""A program started for the lab, a test or a bench, stopped whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from appliance.errors import SluiceError
from appliance.lab import netns


class Process:
    """argv (inside namespace `ns` when given) in a session of its own, so that stop() reaches every
    process it forks. Subclasses say how readiness shows (wait_ready) and which signal stops them."""

    stop_signal: int = signal.SIGINT
    name: str = "process"

    def __init__(self, argv: Sequence[str], ns: str | None = None, *, stdout: int | IO[Any] | None = subprocess.DEVNULL,
                 stderr: int | IO[Any] | None = subprocess.PIPE, cwd: Path | str | None = None) -> None:
        self.argv = netns.exec_argv(ns, argv) if ns is not None else list(argv)
        self.ns = ns
        self._stdout, self._stderr, self._cwd = stdout, stderr, cwd
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def start(self, wait: bool = True) -> Process:
        """Start it; with wait (the default) return only once wait_ready() says it is ready."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr,
                                     text=True, cwd=self._cwd, start_new_session=True)
        self._started()
        if not wait:
            return self
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _started(self) -> None:
        """Hook run right after the program started, before waiting for it (readers of its output)."""

    def wait_ready(self) -> None:
        """Returns once the program is ready; raises SluiceError if it ended first."""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int | None = None, timeout: float = 30) -> int:
        """Signal it (stop_signal by default) and wait; SIGKILL to its session after `timeout` s."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal if sig is None else sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise SluiceError(f"{self.name} did not stop within {timeout:g} s: killed", 1) from None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL to the whole session (its forked workers too), then reap."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def stderr_text(self) -> str:
        """What it wrote on stderr, once it has ended (a pipe only)."""
        if self.proc is None or self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if not self.running():
            if self.proc is not None:
                self.proc.wait()
            return
        if exc_type is not None:
            self.kill()  # a failure inside: no time for a clean stop
            return
        try:
            self.stop()
        finally:
            if self.running():
                self.kill()
