"""tcpdump (or dumpcap) writing a file, ready once its socket is bound."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab.harness.process import Process

# The command PEERS.md compares with, without the output file.
PEER_OPTIONS = ("-B", "65536", "-n", "-q", "--time-stamp-precision=nano")
# What a test wants on top: packets delivered at once (libpcap's TPACKET_V3 blocks otherwise hold
# up to a second of them, which tcpdump drops at SIGINT) and written packet by packet.
IMMEDIATE = ("--immediate-mode", "-U")


class Tcpdump(Process):
    """`tcpdump -i IFNAME -w OUT OPTIONS... [FILTER]`; start() returns once tcpdump says
    "listening on" (printed after its capture socket is bound: nothing later is missed)."""

    name = "tcpdump"
    ready_words = ("listening on",)

    def __init__(self, ns: str | None, ifname: str, out: Path, options: Sequence[str] = PEER_OPTIONS + IMMEDIATE,
                 bpf: Sequence[str] = (), program: str = "tcpdump", prefix: Sequence[str] = ()) -> None:
        self.out = out
        self.ready_line = ""
        super().__init__([*prefix, program, "-i", ifname, "-w", str(out), *options, *bpf], ns)

    def wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        seen = []
        for line in self.proc.stderr:
            if any(word in line for word in self.ready_words):
                self.ready_line = line
                return
            seen.append(line.strip())
        self.proc.wait()
        raise SluiceError(f"{self.name} ended before it was capturing (exit {self.proc.returncode}): "
                          + " | ".join(seen[-3:]), 1)


class Dumpcap(Tcpdump):
    """dumpcap, ready on its "Capturing on" line."""

    name = "dumpcap"
    ready_words = ("Capturing on",)

    def __init__(self, ns: str | None, ifname: str, out: Path, options: Sequence[str] = ("-q",)) -> None:
        super().__init__(ns, ifname, out, options, program="dumpcap")
