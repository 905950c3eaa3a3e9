"""flows: packet totals against tshark, per-connection counts against nfpcapd/nfdump, and the
IPFIX file read by a real collector (nfcapd) and dumped by nfdump."""

from __future__ import annotations

import csv
import json
import socket
import struct
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from appliance.lab import netns
from tests.conftest import require_tool, unique_name
from tests.pcaptool.pcapfiles import build_pcap, parse_pcap, run

pytestmark = [pytest.mark.root, pytest.mark.netns]

HEADER = ("first_ts,last_ts,src_addr,dst_addr,src_port,dst_port,proto,vlan,packets,bytes,rev_packets,"
          "rev_bytes,tcp_flags,rev_tcp_flags")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def tshark_count(path: Path, display_filter: str) -> int:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e",
                          "frame.number"], capture_output=True, text=True, check=True).stdout
    return len(out.split())


def nfdump_rows(nfdir: Path) -> list[dict[str, str]]:
    out = subprocess.run(["nfdump", "-q", "-R", str(nfdir), "-o", "csv"], capture_output=True, text=True,
                         check=True).stdout
    header = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt".split(",")
    rows = []
    for line in out.splitlines():
        if line.startswith("ts,") or not line or "," not in line:
            continue
        rows.append(dict(zip(header, line.split(","), strict=False)))
    return rows


def conn(sa: str, da: str, sp: str, dp: str, proto: str) -> tuple:
    a, b = (sa, int(sp)), (da, int(dp))
    return (proto, *sorted([a, b]))


def test_csv_header_and_packet_totals(captures, tmp_path):
    out = tmp_path / "flows.csv"
    summary = json.loads(run("flows", "--json", "-o", out, captures.span_ns, check=True).stdout)
    assert out.read_text().splitlines()[0] == HEADER
    rows = read_csv(out)
    total = sum(int(r["packets"]) + int(r["rev_packets"]) for r in rows)
    assert total == summary["ip_packets"] == tshark_count(captures.span_ns, "ip or ipv6")
    tcp = [r for r in rows if r["proto"] == "6"]
    assert tcp and all(int(r["rev_packets"]) > 0 for r in tcp)  # both directions in one record
    assert all(int(r["tcp_flags"]) & 0x02 for r in tcp)  # SYN seen from the initiator
    assert len(rows) == summary["flows"]


def test_per_connection_counts_match_nfpcapd(captures, tmp_path):
    require_tool("nfpcapd")
    out = tmp_path / "flows.csv"
    run("flows", "-o", out, captures.span_ns, check=True)
    ours: Counter = Counter()
    for r in read_csv(out):
        if r["proto"] in ("6", "17"):
            name = "TCP" if r["proto"] == "6" else "UDP"
            ours[conn(r["src_addr"], r["dst_addr"], r["src_port"], r["dst_port"], name)] += (
                int(r["packets"]) + int(r["rev_packets"]))
    nfdir = tmp_path / "nf"
    nfdir.mkdir()
    subprocess.run(["nfpcapd", "-r", str(captures.span_ns), "-w", str(nfdir)], check=True, capture_output=True,
                   timeout=120)
    theirs: Counter = Counter()
    for r in nfdump_rows(nfdir):
        if r["pr"] in ("TCP", "UDP"):
            theirs[conn(r["sa"], r["da"], r["sp"], r["dp"], r["pr"])] += int(r["ipkt"])
    assert ours and ours == theirs


def test_idle_and_active_timeouts_split_flows(captures, tmp_path):
    pf = parse_pcap(captures.host_ns.read_bytes())
    icmp = [r for r in pf.records if r[4][12:14] == b"\x08\x00" and r[4][23] == 1][:4]
    base = icmp[0][0]
    # The same echo request at t=0, 1, 2 (one flow with a 5 s idle timeout) and t=20 (a new one).
    records = [(base + dt, 0, *icmp[0][2:]) for dt in (0, 1, 2, 20)]
    src = tmp_path / "gaps.pcap"
    src.write_bytes(build_pcap(pf, records))
    run("flows", "--idle-timeout", "5", "-o", tmp_path / "a.csv", src, check=True)
    assert [int(r["packets"]) for r in read_csv(tmp_path / "a.csv")] == [3, 1]
    run("flows", "--active-timeout", "1.5", "-o", tmp_path / "b.csv", src, check=True)
    active = read_csv(tmp_path / "b.csv")
    assert [int(r["packets"]) for r in active] == [2, 1, 1]
    run("flows", "-o", tmp_path / "c.csv", src, check=True)
    assert [int(r["packets"]) for r in read_csv(tmp_path / "c.csv")] == [4]  # defaults: 300 s / 1800 s


def _send_ipfix(ns: str, path: Path, port: int) -> int:
    data = path.read_bytes()
    msgs, off = [], 0
    while off < len(data):
        version, length = struct.unpack_from("!HH", data, off)
        assert version == 10 and length >= 16
        msgs.append(data[off:off + length])
        off += length
    code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);d=sys.stdin.buffer.read();"
            "import struct;o=0\n"
            "while o<len(d):\n l=struct.unpack_from('!H',d,o+2)[0];s.sendto(d[o:o+l],('127.0.0.1',"
            f"{port}));o+=l")
    netns.run_in(ns, ["python3", "-c", code], input=data.decode("latin1"), encoding="latin1")
    return len(msgs)


def test_ipfix_file_read_by_nfcapd(captures, tmp_path):
    require_tool("nfcapd")
    csv_out, ipfix_out = tmp_path / "flows.csv", tmp_path / "flows.ipfix"
    run("flows", "-o", csv_out, captures.span_ns, check=True)
    run("flows", "--format", "ipfix", "-o", ipfix_out, captures.span_ns, check=True)
    rows = read_csv(csv_out)
    ns = unique_name("sluice-t-")
    netns.add_namespace(ns)
    nfdir = tmp_path / "nfcapd"
    nfdir.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        collector = subprocess.Popen(netns.exec_argv(ns, ["nfcapd", "-w", str(nfdir), "-p", str(port), "-b",
                                                          "127.0.0.1"]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        netns.wait_listening(ns, port, "udp")
        assert _send_ipfix(ns, ipfix_out, port) >= 1
        deadline = time.monotonic() + 10
        # nfcapd has read every datagram once its socket's receive queue is empty again
        while netns.listening(ns, port, "udp")[0].split()[1] != "0" and time.monotonic() < deadline:
            time.sleep(0.05)
        collector.terminate()
        collector.wait(timeout=10)
    finally:
        netns.delete_namespace(ns)
    got = nfdump_rows(nfdir)
    assert len(got) == len(rows)
    assert sum(int(r["ipkt"]) for r in got) == sum(int(r["packets"]) for r in rows)
    assert sum(int(r["opkt"]) for r in got) == sum(int(r["rev_packets"]) for r in rows)  # RFC 5103
    assert sum(int(r["ibyt"]) for r in got) == sum(int(r["bytes"]) for r in rows)
    ours = Counter((r["src_addr"], r["dst_addr"], int(r["src_port"]), int(r["dst_port"])) for r in rows)
    theirs = Counter((r["sa"], r["da"], int(r["sp"]), int(r["dp"])) for r in got)
    assert ours == theirs
