"""The lab's SPAN port mirrors what a switch port sees, with real programs talking over it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab import netns, topology, traffic
from appliance.lab.harness.tcpdump import IMMEDIATE, Tcpdump
from tests.conftest import REPO, require_tool, unique_name

pytestmark = [pytest.mark.root, pytest.mark.netns]
SLUICE = str(REPO / ".venv" / "bin" / "sluice")


class SpanCapture:
    """tcpdump on the lab's SPAN interface, writing a pcap file that tshark then reads."""

    def __init__(self, lab: topology.Lab, path: Path, bpf: str = "") -> None:
        require_tool("tcpdump")
        self.path = path
        # ready once tcpdump says "listening on"; immediate mode: no ring block held back at SIGINT
        self.dump = Tcpdump(lab.capture_ns, lab.capture_if, path, ("-n", "-Z", "root", *IMMEDIATE),
                            bpf=[bpf] if bpf else []).start()

    def stop(self) -> None:
        time.sleep(0.3)  # tcpdump in immediate mode: its time to be scheduled and write the last packets
        self.dump.stop(timeout=10)

    def fields(self, display_filter: str, *names: str) -> list[list[str]]:
        require_tool("tshark")
        argv = ["tshark", "-r", str(self.path), "-Y", display_filter, "-T", "fields"]
        for name in names:
            argv += ["-e", name]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return [line.split("\t") for line in out.splitlines()]


def test_ping_between_mirrored_ports_arrives_twice_per_direction(lab, tmp_path):
    h1, h2, h3 = (lab.host(n) for n in ("h1", "h2", "h3"))
    span = SpanCapture(lab, tmp_path / "span.pcap", "icmp")
    count = 25
    assert traffic.ping(lab, "h1", "h2", count) == count
    # h3's port is not mirrored: its exchange with h1 is seen once per direction, on h1's port.
    assert traffic.ping(lab, "h3", "h1", count) == count
    span.stop()
    echo = span.fields("icmp.type == 8 or icmp.type == 0", "ip.src", "ip.dst", "icmp.type")
    pairs = [tuple(row) for row in echo]
    assert pairs.count((h1.ipv4, h2.ipv4, "8")) == 2 * count
    assert pairs.count((h2.ipv4, h1.ipv4, "0")) == 2 * count
    assert pairs.count((h3.ipv4, h1.ipv4, "8")) == count
    assert pairs.count((h1.ipv4, h3.ipv4, "0")) == count
    assert len(pairs) == 6 * count


def test_http_dns_iperf_traffic_is_seen_on_the_span_port(lab, tmp_path):
    h1, h2 = lab.host("h1"), lab.host("h2")
    span = SpanCapture(lab, tmp_path / "span.pcap")
    assert traffic.http_get(lab, "h2", "h1") > 32 * 1024
    assert traffic.dns_query(lab, "h3") == [h1.ipv4]
    assert traffic.iperf(lab, "h2", "h1", seconds=1, bitrate="10M") > 1e6
    assert traffic.ping(lab, "h2", "h1", 3, family=6) == 3
    span.stop()

    gets = span.fields("http.request.method == \"GET\"", "ip.src", "ip.dst", "http.request.uri")
    assert [h2.ipv4, h1.ipv4, "/index.html"] in gets
    answers = span.fields("dns.flags.response == 1", "dns.qry.name", "dns.a")
    assert ["www.lab.example", h1.ipv4] in answers
    iperf_segments = span.fields("tcp.port == 5201 and tcp.len > 1000", "ip.src")
    assert len(iperf_segments) > 100
    # No frame on the SPAN port is larger than the wire allows: offloads are off in the lab.
    assert span.fields("frame.len > 1514", "frame.number") == []
    pings6 = span.fields("icmpv6.type == 128", "ipv6.src", "ipv6.dst")
    assert [h2.ipv6, h1.ipv6] in pings6


def test_trafgen_flood_reaches_the_span_port(lab):
    before = netns.link_stats(lab.capture_ns, lab.capture_if)["rx_packets"]
    traffic.flood(lab, "h1", "h2", count=5000, size=600)
    deadline = time.monotonic() + 5
    while (after := netns.link_stats(lab.capture_ns, lab.capture_if)["rx_packets"]) - before < 2 * 5000 \
            and time.monotonic() < deadline:
        time.sleep(0.05)  # the bridge still forwarding: the port's counter, polled
    # Mirrored on h1's ingress and on h2's egress: every flood frame twice.
    assert after - before >= 2 * 5000


def test_two_labs_run_side_by_side_with_their_own_addresses(lab):
    from appliance.lab.commands import lab_up

    other_id = unique_name("t")
    try:
        other = lab_up(other_id, with_services=False)
        mine = {h.ipv4 for h in lab.hosts.values()} | {h.ipv6 for h in lab.hosts.values()}
        theirs = {h.ipv4 for h in other.hosts.values()} | {h.ipv6 for h in other.hosts.values()}
        assert not mine & theirs
        assert set(lab.namespaces).isdisjoint(other.namespaces)
        assert traffic.ping(other, "h1", "h2", 2) == 2
        assert traffic.ping(lab, "h1", "h2", 2) == 2
    finally:
        topology.destroy(other_id)


def test_down_cleans_up_a_lab_whose_owner_died():
    lab_id = unique_name("t")
    try:
        up = subprocess.run([SLUICE, "lab", "up", "--id", lab_id, "--json"], capture_output=True, text=True,
                            check=True)
        lab = json.loads(up.stdout)
        # What a crash leaves: the namespaces with their servers running, and no state file.
        Path(topology.STATE_DIR / f"{lab_id}.json").unlink()
        assert netns.pids_in(lab["hosts"]["h1"]["ns"])
        down = subprocess.run([SLUICE, "lab", "down", lab_id], capture_output=True, text=True)
        assert down.returncode == 0, down.stderr
        assert not [n for n in netns.list_namespaces() if lab_id in n]
    finally:
        topology.destroy(lab_id)


def test_second_down_says_the_lab_is_gone_in_one_line():
    lab_id = unique_name("t")
    subprocess.run([SLUICE, "lab", "up", "--id", lab_id, "--no-services"], check=True, capture_output=True)
    try:
        first = subprocess.run([SLUICE, "lab", "down", lab_id], capture_output=True, text=True)
        second = subprocess.run([SLUICE, "lab", "down", lab_id], capture_output=True, text=True)
    finally:
        topology.destroy(lab_id)
    assert first.returncode == 0
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "does not exist" in second.stderr


def test_lab_up_without_root_privileges_is_one_clear_line():
    require_tool("setpriv")
    proc = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", SLUICE, "lab", "up"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "needs root" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_lab_id_and_flood_size_are_refused():
    bad = subprocess.run([SLUICE, "lab", "up", "--id", "Bad/Id"], capture_output=True, text=True)
    assert bad.returncode == 2 and "lab id" in bad.stderr and bad.stderr.count("\n") == 1
