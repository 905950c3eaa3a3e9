"""trafgen, the peers' traffic generator: a config for UDP frames, a background flood, a blocking run."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab import netns
from appliance.lab.harness.process import Process

# IPv4/UDP 198.51.100.1:40000 -> 198.51.100.2:7777 between two made-up MACs, random IP ids.
UDP_CONF = """{ 0x02,0xaa,0xbb,0xcc,0xdd,0x02, 0x02,0xaa,0xbb,0xcc,0xdd,0x01, 0x08,0x00,
  0x45,0x00, const16(%(ip_len)d), drnd(2), 0x00,0x00, 0x40,0x11,0x00,0x00,
  198,51,100,1, 198,51,100,2,
  0x9c,0x40,0x1e,0x61, const16(%(udp_len)d), 0x00,0x00,
  fill(0x55, %(payload)d) }
"""


def udp_conf(directory: Path, frame_len: int) -> Path:
    """A trafgen config for UDP frames of frame_len bytes on the wire (without FCS)."""
    payload = frame_len - 14 - 20 - 8
    conf = directory / f"udp{frame_len}.cfg"
    conf.write_text(UDP_CONF % {"ip_len": payload + 28, "udp_len": payload + 8, "payload": payload})
    return conf


def argv(dev: str, conf: Path, count: int | None = None, gap_us: int | None = None, cpu: int | None = None,
         rate: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """`trafgen --dev DEV --conf CONF -q [-n COUNT] --cpus 1 ...` as PEERS.md runs it, pinned with taskset."""
    out = ["trafgen", "--dev", dev, "--conf", str(conf), "-q", *(["-n", str(count)] if count is not None else []),
           "--cpus", "1", *extra]
    if gap_us is not None:
        out += ["-t", f"{gap_us}us"]
    if rate is not None:
        out += ["--rate", rate]
    return ["taskset", "-c", str(cpu), *out] if cpu is not None else out


class Trafgen(Process):
    """trafgen sending in the background; stop() ends it and every worker it forked (SIGKILL to its
    session by default: a flood that is being stopped has nothing left to flush)."""

    name = "trafgen"
    stop_signal = signal.SIGKILL

    def __init__(self, ns: str | None, dev: str, conf: Path, count: int | None = None, gap_us: int | None = None,
                 cpu: int | None = None, rate: str | None = None, extra: Sequence[str] = ()) -> None:
        super().__init__(argv(dev, conf, count, gap_us, cpu, rate, extra), ns)

    def stop(self, sig: int | None = None, timeout: float = 30) -> int:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, self.stop_signal if sig is None else sig)
        return super().stop(sig, timeout)

    def sent_all(self) -> bool:
        """True once trafgen ended by itself with success (it sent its -n frames)."""
        return self.proc is not None and self.proc.poll() == 0


def run(ns: str | None, dev: str, conf: Path, count: int, cpu: int | None = None, rate: str | None = None,
        gap_us: int | None = None, timeout: float = 600) -> None:
    """trafgen sends `count` frames and ends; a failure is one SluiceError line with trafgen's own words."""
    cmd = argv(dev, conf, count, gap_us, cpu, rate)
    if ns is not None:
        netns.run_in(ns, cmd, timeout=timeout)
        return
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SluiceError(f"trafgen: {(proc.stderr or proc.stdout).strip() or f'exit {proc.returncode}'}")
