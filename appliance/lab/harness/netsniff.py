"""netsniff-ng writing a file, ready once its packet socket is bound to the interface."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab.harness.process import Process

PEER_OPTIONS = ("--silent", "--ring-size", "64MiB")


def bound_packet_sockets(pid: int) -> list[int]:
    """Interface indexes of the AF_PACKET sockets process pid holds (from /proc/PID/net/packet,
    which shows the sockets of pid's own network namespace)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open(f"/proc/{pid}/net/packet") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return []
    # sk RefCnt Type Proto Iface R Rmem User Inode
    return [int(row[4]) for row in rows if len(row) >= 9 and row[8] in inodes and row[5] == "1"]


class Netsniff(Process):
    """`netsniff-ng --in IFNAME --out OUT OPTIONS...` (prefix e.g. `taskset -c 1`); start() returns once
    its ring's socket is bound and running on an interface: netsniff-ng --silent prints nothing."""

    name = "netsniff-ng"

    def __init__(self, ns: str | None, ifname: str, out: Path, options: Sequence[str] = PEER_OPTIONS,
                 prefix: Sequence[str] = (), timeout: float = 10) -> None:
        self.out, self.timeout = out, timeout
        super().__init__([*prefix, "netsniff-ng", "--in", ifname, "--out", str(out), *options], ns)

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SluiceError(f"netsniff-ng ended (exit {self.proc.returncode}): {self.stderr_text().strip()}", 1)
            if any(index > 0 for index in bound_packet_sockets(self.proc.pid)):
                return
            time.sleep(0.01)  # polling /proc: there is no event to wait on
        raise SluiceError(f"netsniff-ng did not bind its socket within {self.timeout:g} s", 1)
