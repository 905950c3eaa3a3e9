"""Captures of real lab traffic for the sluice-pcap tests, made once per session.

A lab of our own (hosts on a bridge, both directions of h1's and h2's ports mirrored to the
SPAN port, so h1<->h2 packets arrive twice) carries ping (v4, v6), HTTP, DNS and a UDP probe
to a closed port (ICMP port unreachable quoting the probe); tcpdump records the SPAN port with
nanosecond and with microsecond timestamps, dumpcap records pcapng.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.tcpdump import Dumpcap, Tcpdump
from tests.conftest import SLUICE_PCAP, require_tool, unique_name

KEY_HEX = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202"


@dataclass
class Captures:
    dir: Path
    span_ns: Path      # pcap, ns, from tcpdump on the SPAN port (copies included)
    span_us: Path      # pcap, µs, the same traffic from a second tcpdump
    span_ng: Path      # pcapng from dumpcap
    host_ns: Path      # pcap, ns, on h2's own interface (no SPAN copies)
    mixed_ng: Path     # pcapng with two interfaces of different link types (Ethernet, raw IP)
    key_file: Path


def _udp_probe(ns: str, dst: str, port: int) -> None:
    code = (f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"[s.sendto(b'probe%d'%i,('{dst}',{port})) for i in range(3)]")
    netns.run_in(ns, ["python3", "-c", code])


@pytest.fixture(scope="session")
def sluice_pcap() -> Path:
    if not SLUICE_PCAP.exists():
        pytest.fail("native/build/sluice-pcap is missing: run `make native`")
    return SLUICE_PCAP


@pytest.fixture(scope="session")
def captures(tmp_path_factory: pytest.TempPathFactory, sluice_pcap: Path) -> Captures:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    for tool in ("tcpdump", "dumpcap", "editcap", "mergecap"):
        require_tool(tool)
    from appliance.lab import traffic
    from appliance.lab.commands import lab_down, lab_up

    d = tmp_path_factory.mktemp("captures")
    lab_id = unique_name("pc")
    lab = lab_up(lab_id)
    try:
        cap = lab.capture_ns
        h2 = lab.host("h2")
        with ExitStack() as running:  # each ready on its own line before the next starts; all stopped
            for dump in (Tcpdump(cap, lab.capture_if, d / "span_ns.pcap", ("-n", "-U", "--time-stamp-precision=nano")),
                         Tcpdump(cap, lab.capture_if, d / "span_us.pcap", ("-n", "-U")),
                         Dumpcap(cap, lab.capture_if, d / "span_ng.pcapng"),
                         Tcpdump(h2.ns, h2.ifname, d / "host_ns.pcap", ("-n", "-U", "--time-stamp-precision=nano"))):
                running.enter_context(dump)
            traffic.ping(lab, "h1", "h2", 20, interval=0.01)
            traffic.ping(lab, "h2", "h1", 10, interval=0.01, family=6)
            for _ in range(3):
                traffic.http_get(lab, "h2", "h1")
            traffic.http_get(lab, "h2", "h1", family=6)
            traffic.dns_query(lab, "h1")
            _udp_probe(lab.host("h1").ns, h2.ipv4, 33434)
            time.sleep(1.0)  # not immediate mode (the corpus is what a default capture gives): a ring block retires
    finally:
        lab_down(lab_id)
    # Raw IP version of the host capture (Ethernet header cut), merged into a two-interface pcapng.
    raw = d / "host_raw.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", "-C", "14", "-T", "rawip", str(d / "host_ns.pcap"), str(raw)],
                   check=True, capture_output=True)
    mixed = d / "mixed.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(mixed), str(d / "host_ns.pcap"), str(raw)],
                   check=True, capture_output=True)
    key = d / "key.hex"
    key.write_text(KEY_HEX + "\n")
    key.chmod(0o600)
    return Captures(dir=d, span_ns=d / "span_ns.pcap", span_us=d / "span_us.pcap",
                    span_ng=d / "span_ng.pcapng", host_ns=d / "host_ns.pcap", mixed_ng=mixed, key_file=key)


@pytest.fixture(scope="session")
def free_udp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
