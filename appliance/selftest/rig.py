"""The self-test's test bench: a network namespace of its own holding one veth pair, trafgen
sending frames of one size into one end (at full speed, or shaped to a rate by a tbf qdisc),
the capture on the other end, and the kernel's counters of both ends.

Everything lives under names that carry the owner's pid (`sluice-selftest-PID`), so a rig left
by a killed self-test is found and removed by the next one (`remove_stale`). Addresses and
frames are documentation ones (198.51.100.0/24); nothing leaves the namespace.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab import netns

NS_PREFIX = "sluice-selftest-"
TX_IF = "stgen0"  # trafgen's end
RX_IF = "stcap0"  # the capture's end
# Frame sizes are Ethernet frames with their 4-byte FCS (64..1518 on a 1500-byte MTU); trafgen
# writes the frame without the FCS, which the wire (and the veth) does not carry.
FCS = 4
MIN_FRAME, MAX_FRAME = 64, 1518

_TRAFGEN_UDP = """{{ 0x00,0x00,0x5e,0x00,0x53,0x02, 0x00,0x00,0x5e,0x00,0x53,0x01, 0x08,0x00,
  0x45,0x00, const16({ip_len}), drnd(2), 0x00,0x00, 0x40,0x11,0x00,0x00,
  198,51,100,1, 198,51,100,2,
  0x9c,0x40,0x00,0x09, const16({udp_len}), 0x00,0x00,
  drnd({random}), {fixed} }}
"""


_FIXED_PAYLOAD = random.Random(19).randbytes(MAX_FRAME)


def trafgen_frame(frame_bytes: int) -> str:
    """A trafgen config: IPv4/UDP to the discard port, `frame_bytes` on the wire with the FCS.
    The payload's first 16 bytes are random per frame (drnd); the rest is random bytes fixed in the
    config: trafgen would spend its CPU on fresh random bytes for a whole large frame."""
    if not MIN_FRAME <= frame_bytes <= MAX_FRAME:
        raise SluiceError(f"frame size {frame_bytes} is not allowed: {MIN_FRAME}..{MAX_FRAME} bytes "
                          "(Ethernet frame with FCS)", 2)
    payload = frame_bytes - FCS - 14 - 20 - 8
    per_frame = min(16, payload)
    fixed = ",".join(f"0x{b:02x}" for b in _FIXED_PAYLOAD[: payload - per_frame])
    template = _TRAFGEN_UDP if fixed else _TRAFGEN_UDP.replace(", {fixed}", "")
    return template.format(ip_len=payload + 28, udp_len=payload + 8, random=per_frame, fixed=fixed)


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Removes the rigs of self-tests whose process is gone; returns their namespace names."""
    removed = []
    for name in netns.list_namespaces():
        m = re.fullmatch(re.escape(NS_PREFIX) + r"(\d+)", name)
        if m and not _owner_alive(int(m.group(1))):
            netns.delete_namespace(name)
            removed.append(name)
    return removed


def shape(ns: str, ifname: str, frame_bytes: int, pps: float) -> None:
    """A token bucket on a sender's interface holding frames of this size (with FCS) to `pps`:
    the only way to hold trafgen (run with --qdisc-path) to a rate above ~100 kpps, where its own
    --rate stops pacing."""
    rate_bytes = pps * (frame_bytes - FCS)
    burst = max(16 * 1024, int(rate_bytes / 200))  # 5 ms of traffic
    # A short queue: trafgen's frames waiting in it count against its socket's send buffer, and
    # trafgen gives up (EAGAIN) when that is full; frames the queue refuses are simply not sent
    # (the rate is what left the queue).
    limit = 64 * 1024
    proc = subprocess.run(["tc", "-n", ns, "qdisc", "replace", "dev", ifname, "root", "tbf",
                           "rate", f"{int(rate_bytes * 8)}bit", "burst", str(burst), "limit", str(limit)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SluiceError(f"tc tbf on {ifname}: {proc.stderr.strip()}", 1)


def unshape(ns: str, ifname: str) -> None:
    subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", ifname, "root"], capture_output=True, check=False)


@dataclass
class LinkCounters:
    sent: int          # frames that left trafgen's end (tx_packets)
    arrived: int       # frames the capture's end received (rx_packets)
    dropped: int       # frames the capture's end dropped before any socket (rx_dropped: backlog)


class Rig:
    """The namespace with its veth pair; `close()` (or the context manager) removes all of it."""

    def __init__(self, cpus: list[int] | None = None) -> None:
        self.ns = f"{NS_PREFIX}{os.getpid()}"
        self.cpus = cpus or []  # trafgen's CPUs: one sending process on each; none: one, unpinned
        self._tmp = Path(tempfile.mkdtemp(prefix="sluice-selftest-"))
        self._gen: subprocess.Popen[str] | None = None
        self._shaped = False

    def __enter__(self) -> Rig:
        try:
            self.open()
        except BaseException:
            self.close()  # whatever was made before the failure
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if shutil.which("trafgen") is None:
            raise SluiceError("trafgen is not installed (Debian package netsniff-ng)", 2)
        netns.require_root("sluice selftest")
        netns.add_namespace(self.ns)
        netns.ip("-n", self.ns, "link", "add", TX_IF, "type", "veth", "peer", "name", RX_IF)
        for ifname in (TX_IF, RX_IF):
            # Only the generator's frames on the link: no IPv6 autoconfiguration chatter.
            netns.run_in(self.ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"])
            netns.ip("-n", self.ns, "link", "set", ifname, "up")
        # As the capture profile tunes a NIC: no super-packets on the capture side.
        netns.run_in(self.ns, ["ethtool", "-K", RX_IF, "gro", "off"], check=False)

    def close(self) -> None:
        self.stop_generator()
        if self.ns in netns.list_namespaces():
            netns.delete_namespace(self.ns)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def counters(self) -> LinkCounters:
        tx = netns.link_stats(self.ns, TX_IF)
        rx = netns.link_stats(self.ns, RX_IF)
        return LinkCounters(sent=tx["tx_packets"], arrived=rx["rx_packets"], dropped=rx["rx_dropped"])

    def _shape(self, frame_bytes: int, pps: float | None) -> None:
        if pps is None:
            if self._shaped:
                unshape(self.ns, TX_IF)
                self._shaped = False
            return
        shape(self.ns, TX_IF, frame_bytes, pps)
        self._shaped = True

    def start_generator(self, frame_bytes: int, pps: float | None) -> None:
        """trafgen sending frames of this size until stop_generator(): shaped to `pps`, or at full
        speed (qdisc bypassed) when pps is None."""
        self.stop_generator()
        self._shape(frame_bytes, pps)
        conf = self._tmp / f"udp{frame_bytes}.cfg"
        conf.write_text(trafgen_frame(frame_bytes))
        argv = ["trafgen", "--dev", TX_IF, "--conf", str(conf), "--cpus", str(max(len(self.cpus), 1))]
        if pps is not None:
            argv.append("--qdisc-path")  # through the tbf; by default trafgen bypasses the qdisc
        if self.cpus:
            argv = ["taskset", "-c", ",".join(map(str, self.cpus)), *argv]
        # Its own session: trafgen forks a worker, and stop_generator must reach both.
        self._gen = subprocess.Popen(netns.exec_argv(self.ns, argv), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def stop_generator(self) -> None:
        """Stops trafgen; one that ended by itself before (it runs until stopped) is a failure."""
        gen, self._gen = self._gen, None
        if gen is None:
            return
        ended_by_itself = gen.poll() is not None
        if not ended_by_itself:
            # Its exit status is not looked at: interrupted while a shaped queue is full, trafgen
            # reports that it could not flush its ring, which only concerns frames never sent.
            try:
                os.killpg(gen.pid, signal.SIGINT)
                gen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(gen.pid, signal.SIGKILL)
                gen.wait(timeout=5)
            except ProcessLookupError:
                pass
        err = (gen.stderr.read() if gen.stderr else "").strip().splitlines()
        if gen.stderr is not None:
            gen.stderr.close()
        if ended_by_itself:
            raise SluiceError(f"trafgen failed: {err[-1] if err else f'exit {gen.returncode}'}", 1)

    def generator_running(self) -> bool:
        return self._gen is not None and self._gen.poll() is None

    def wait_idle(self, timeout: float = 2.0) -> None:
        """Until nothing more is sent (trafgen's last frames left its socket)."""
        deadline = time.monotonic() + timeout
        last = self.counters().sent
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.counters().sent
            if now == last:
                return
            last = now
