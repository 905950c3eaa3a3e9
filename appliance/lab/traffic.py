"""Real traffic between the lab's hosts: ping, curl, dig, iperf3, and trafgen for floods.

Each function runs the real program inside the source host's namespace and returns what the
program itself reported, so a test can compare it with what arrived on the SPAN port.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab import netns
from appliance.lab.harness import trafgen
from appliance.lab.services import HTTP_PORT, IPERF_PORT
from appliance.lab.topology import DNS_NAME, Lab

FLOOD_UDP_PORT = 9  # discard


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _address(lab: Lab, host: str, family: int) -> str:
    h = lab.host(host)
    return h.ipv6 if family == 6 else h.ipv4


def ping(lab: Lab, src: str, dst: str, count: int, interval: float = 0.05, family: int = 4) -> int:
    """Echo requests from src to dst; returns how many replies came back."""
    argv = ["ping", "-n", "-q", f"-{family}", "-c", str(count), "-i", str(interval), "-W", "2",
            _address(lab, dst, family)]
    proc = netns.run_in(lab.host(src).ns, argv, check=False, timeout=count * interval + 30)
    match = re.search(r"(\d+) received", proc.stdout)
    if match is None:
        raise SluiceError(f"ping {src}->{dst} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return int(match.group(1))


def http_get(lab: Lab, src: str, dst: str = "h1", family: int = 4) -> int:
    """An HTTP GET with curl from src to the server on dst; returns the bytes downloaded."""
    url = f"http://{_url_host(_address(lab, dst, family))}:{HTTP_PORT}/index.html"
    proc = netns.run_in(lab.host(src).ns, ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}",
                                           "--max-time", "10", url])
    return int(proc.stdout.strip())


def dns_query(lab: Lab, src: str, name: str = DNS_NAME, qtype: str = "A") -> list[str]:
    """A query with dig from src to dnsmasq on h2; returns the answers."""
    server = lab.host("h2").ipv4
    proc = netns.run_in(lab.host(src).ns, ["dig", "+short", "+time=2", "+tries=2", f"@{server}", name, qtype])
    return proc.stdout.split()


def iperf(lab: Lab, src: str, dst: str = "h1", seconds: float = 2, bitrate: str = "20M",
          streams: int = 1) -> float:
    """TCP from src to the iperf3 server on dst; returns the receiver's bits per second."""
    argv = ["iperf3", "-J", "-c", _address(lab, dst, 4), "-p", str(IPERF_PORT), "-t", str(seconds),
            "-b", bitrate, "-P", str(streams)]
    proc = netns.run_in(lab.host(src).ns, argv, timeout=seconds + 30)
    return float(json.loads(proc.stdout)["end"]["sum_received"]["bits_per_second"])


def trafgen_config(lab: Lab, src: str, dst: str, size: int) -> str:
    """A trafgen packet: Ethernet/IPv4/UDP from src to dst, `size` bytes on the wire (no FCS)."""
    if not 60 <= size <= 1514:
        raise SluiceError(f"flood frame size {size} is not allowed: 60..1514 bytes")
    s, d = lab.host(src), lab.host(dst)
    payload = size - 14 - 20 - 8
    return (
        "{\n"
        f"  eth(da={d.mac}, sa={s.mac}, type=0x0800),\n"
        f"  ipv4(saddr={s.ipv4}, daddr={d.ipv4}, ttl=64),\n"
        f"  udp(sp={FLOOD_UDP_PORT}, dp={FLOOD_UDP_PORT}),\n"
        f"  fill(0x5a, {payload}),\n"
        "}\n"
    )


def flood(lab: Lab, src: str = "h1", dst: str = "h2", count: int = 100_000, size: int = 1442,
          cpu: int | None = None, rate: str | None = None) -> int:
    """trafgen sends `count` frames from src to dst at full speed, or at `rate` (trafgen's
    --rate: "100MB", "50kpps"); returns the count sent."""
    if shutil.which("trafgen") is None:
        raise SluiceError("trafgen is not installed (Debian package netsniff-ng): `make deps`")
    with tempfile.TemporaryDirectory(prefix="sluice-lab-") as tmp:
        cfg = Path(tmp) / "flood.cfg"
        cfg.write_text(trafgen_config(lab, src, dst, size))
        trafgen.run(lab.host(src).ns, lab.host(src).ifname, cfg, count, cpu=cpu, rate=rate, timeout=600)
    return count


def mixed(lab: Lab, seconds: float, stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
    """A steady mix of the lab's programs for `seconds`: what `make run` captures.

    Each round: an HTTP GET h2->h1, a DNS query h3->h2, pings h1<->h2 over IPv4 and IPv6;
    every fifth round a short iperf3 burst h2->h1. Ends early when stop() is true. Returns how
    many of each succeeded.
    """
    done = {"http": 0, "dns": 0, "ping": 0, "iperf": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    round_no = 0
    while time.monotonic() < deadline and not stop():
        round_no += 1
        steps = [("http", lambda: http_get(lab, "h2", "h1")),
                 ("dns", lambda: dns_query(lab, "h3")),
                 ("ping", lambda: ping(lab, "h1", "h2", 3, interval=0.2)),
                 ("ping", lambda: ping(lab, "h2", "h1", 2, interval=0.2, family=6))]
        if round_no % 5 == 0:
            steps.append(("iperf", lambda: iperf(lab, "h2", "h1", seconds=1, bitrate="20M")))
        for name, step in steps:
            if time.monotonic() >= deadline or stop():
                break
            try:
                step()
                done[name] += 1
            except (SluiceError, subprocess.TimeoutExpired, ValueError, KeyError):
                done["errors"] += 1
        time.sleep(0.3)
    return done
