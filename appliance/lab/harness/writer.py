"""sluice-capture as a real process; its stats channel (one JSON object a line) collected line by line."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from appliance.errors import SluiceError
from appliance.lab.harness.process import Process


class Writer(Process):
    """`sluice-capture ARGS...`; ready on its first stats line (its rings are bound by then).
    `lines` holds every stats-channel record so far, `raw` the same lines as text."""

    name = "sluice-capture"

    def __init__(self, argv: Sequence[str], ns: str | None = None, start: bool = True) -> None:
        super().__init__(argv, ns, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader: threading.Thread | None = None
        if start:
            self.start(wait=False)

    def _started(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> Writer:
        if self.proc is None:
            self.start()
        else:
            self.wait_ready()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            self.lines.append(json.loads(line))

    def reading(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0, since: int = 0) -> dict[str, Any]:
        """The first stats-channel record (from lines[since] on) for which pred is true, waiting up to
        timeout s for it."""
        deadline = time.monotonic() + timeout
        seen = since
        while time.monotonic() < deadline:
            lines = list(self.lines)
            for line in lines[seen:]:
                if pred(line):
                    return line
            seen = len(lines)
            assert self.proc is not None
            if self.proc.poll() is not None and not self.reading():
                if len(self.lines) == seen:
                    break
                continue
            time.sleep(0.02)  # the next line arrives within the stats interval; nothing to block on
        raise SluiceError(f"no matching stats line; stderr: {self.stderr_text()}", 1)

    def wait_quiet(self, timeout: float = 10.0) -> dict[str, Any]:
        """Until two stats lines in a row, both written after this call, count the same packets: the
        writer has taken all that arrived (a ring block retires 8 ms after its last packet)."""
        previous: list[int] = []

        def quiet(d: dict[str, Any]) -> bool:
            if d["type"] != "stats":
                return False
            same = bool(previous) and d["packets"] == previous[-1]
            previous.append(d["packets"])
            return same

        return self.wait_for(quiet, timeout, since=len(self.lines))

    def wait_ready(self) -> None:
        self.wait_for(lambda d: d["type"] == "stats")

    def wait(self, timeout: float | None = None) -> int:
        """Until the writer ends by itself and its last line is read; its exit code."""
        assert self.proc is not None
        rc = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return rc

    def stop(self, sig: int | None = signal.SIGINT, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if sig is None else sig)
        rc = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return rc

    def stderr_text(self) -> str:
        if self.proc is None or self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def files(self) -> list[dict[str, Any]]:
        return [d for d in self.lines if d["type"] == "file"]

    def final(self) -> dict[str, Any]:
        finals = [d for d in self.lines if d["type"] == "final"]
        assert len(finals) == 1, self.raw
        return finals[0]
