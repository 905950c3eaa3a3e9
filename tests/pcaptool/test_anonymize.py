"""anonymize: the Crypto-PAn reference vectors, traceanon's IPv4 output, checksums, keys."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from tests.conftest import require_tool
from tests.pcaptool.conftest import KEY_HEX
from tests.pcaptool.pcapfiles import build_pcap, one_error_line, parse_pcap, run

pytestmark = [pytest.mark.root, pytest.mark.netns]

VECTORS = {"128.11.68.132": "135.242.180.132", "24.5.0.80": "100.9.15.210", "64.14.118.196": "0.255.183.58"}


def fields(path, *names: str, display_filter: str | None = None, prefs: tuple[str, ...] = ()) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for p in prefs:
        argv += ["-o", p]
    if display_filter:
        argv += ["-Y", display_filter]
    for n in names:
        argv += ["-e", n]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _with_addresses(captures, tmp_path):
    """Real ICMP echo packets of the lab, readdressed to the reference vectors' addresses."""
    pf = parse_pcap(captures.host_ns.read_bytes())
    icmp = [r for r in pf.records if r[4][12:14] == b"\x08\x00" and r[4][23] == 1][:3]
    records = []
    for (src, dst), rec in zip([("128.11.68.132", "24.5.0.80"), ("64.14.118.196", "128.11.68.132"),
                                ("24.5.0.80", "64.14.118.196")], icmp, strict=True):
        b = bytearray(rec[4])
        b[26:30] = ipaddress.IPv4Address(src).packed
        b[30:34] = ipaddress.IPv4Address(dst).packed
        records.append((*rec[:4], bytes(b)))
    path = tmp_path / "vectors.pcap"
    path.write_bytes(build_pcap(pf, records))
    return path


def test_reference_vectors(captures, tmp_path):
    src = _with_addresses(captures, tmp_path)
    out = tmp_path / "anon.pcapng"
    run("anonymize", "--key-file", captures.key_file, src, out, check=True)
    before = fields(src, "ip.src", "ip.dst")
    after = fields(out, "ip.src", "ip.dst")
    assert [[VECTORS[a] for a in row] for row in before] == after


def test_ipv4_identical_to_traceanon(captures, tmp_path):
    require_tool("traceanon")
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "traceanon.pcap"
    run("anonymize", "--format", "pcap", "--key-file", captures.key_file, captures.span_ns, ours, check=True)
    key = bytes.fromhex(KEY_HEX)
    subprocess.run([b"traceanon", b"-c", key, b"-s", b"-d", os.fsencode(f"pcapfile:{captures.span_ns}"),
                    os.fsencode(f"pcapfile:{theirs}")], check=True, capture_output=True)
    names = ("frame.number", "ip.src", "ip.dst")
    # traceanon leaves the unspecified address 0.0.0.0 (a DHCP client's source) as it is; we do not
    unspecified = {r[0] for r in fields(captures.span_ns, *names, display_filter="ip.addr == 0.0.0.0")}
    mine = [r[1:] for r in fields(ours, *names, display_filter="ip") if r[0] not in unspecified]
    peer = [r[1:] for r in fields(theirs, *names, display_filter="ip") if r[0] not in unspecified]
    assert len(mine) > 100
    assert mine == peer
    # ICMP errors quote the packet that caused them: both layers were anonymised, alike.
    quoted = fields(ours, "ip.src", display_filter="icmp.type == 3")
    assert quoted and all(len(row[0].split(",")) == 2 for row in quoted)
    originals = {r[0] for r in fields(captures.span_ns, "ip.src", "ip.dst", display_filter="ip")}
    assert not any(a in originals for row in mine for a in row[0].split(","))


def test_checksums_stay_valid(captures, tmp_path):
    out = tmp_path / "anon.pcapng"
    run("anonymize", "--key-file", captures.key_file, captures.span_ns, out, check=True)
    prefs = ("ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE")
    names = ("ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "icmp.checksum.status",
             "icmpv6.checksum.status")
    before = fields(captures.span_ns, *names, prefs=prefs)
    after = fields(out, *names, prefs=prefs)
    assert after == before
    # IP header and ICMP checksums are all good (1); TCP/UDP keep their state: the kernel leaves
    # the transport checksum of locally sent packets partial, and so does an incremental update.
    ip_icmp = {v for row in after for cell in (row[0], row[3], row[4]) for v in cell.split(",") if v}
    assert ip_icmp == {"1"}


def test_ipv6_and_arp_prefix_preserving_and_consistent(captures, tmp_path):
    out = tmp_path / "anon.pcapng"
    run("anonymize", "--key-file", captures.key_file, captures.span_ns, out, check=True)
    v6_before = fields(captures.span_ns, "ipv6.src", "ipv6.dst", display_filter="icmpv6.type == 128")
    v6_after = fields(out, "ipv6.src", "ipv6.dst", display_filter="icmpv6.type == 128")
    assert v6_before and len(v6_before) == len(v6_after)
    for (s0, d0), (s1, d1) in zip(v6_before, v6_after, strict=True):
        a0, b0 = int(ipaddress.IPv6Address(s0)), int(ipaddress.IPv6Address(d0))
        a1, b1 = int(ipaddress.IPv6Address(s1)), int(ipaddress.IPv6Address(d1))
        assert a1 != a0 and b1 != b0
        common = 128 - (a0 ^ b0).bit_length()
        assert 128 - (a1 ^ b1).bit_length() == common
    # Neighbour solicitations name their target: anonymised like the same address in IPv6 headers.
    v6_map = {}
    for (s0, d0), (s1, d1) in zip(v6_before, v6_after, strict=True):
        v6_map[s0], v6_map[d0] = s1, d1
    nd_before = fields(captures.span_ns, "icmpv6.nd.ns.target_address", display_filter="icmpv6.type == 135")
    nd_after = fields(out, "icmpv6.nd.ns.target_address", display_filter="icmpv6.type == 135")
    assert nd_before and len(nd_before) == len(nd_after)
    for (b,), (a,) in zip(nd_before, nd_after, strict=True):
        assert a != b
        if b in v6_map:
            assert v6_map[b] == a
    arp_before = fields(captures.span_ns, "arp.src.proto_ipv4", display_filter="arp")
    arp_after = fields(out, "arp.src.proto_ipv4", display_filter="arp")
    assert arp_before and arp_after != arp_before
    ip_map = dict(zip((r[0] for r in fields(captures.span_ns, "ip.src", display_filter="ip and not icmp")),
                      (r[0] for r in fields(out, "ip.src", display_filter="ip and not icmp")), strict=True))
    for (b,), (a,) in zip(arp_before, arp_after, strict=True):
        if b in ip_map:
            assert ip_map[b] == a  # one mapping for ARP and IP


def test_key_id_recorded_never_the_key(captures, tmp_path):
    out = tmp_path / "anon.pcapng"
    summary = json.loads(run("anonymize", "--json", "--key-file", captures.key_file, captures.span_ns, out,
                             check=True).stdout)
    data = out.read_bytes()
    assert summary["key_id"].startswith("sha256:") and summary["key_id"].encode() in data
    assert bytes.fromhex(KEY_HEX) not in data and KEY_HEX.encode() not in data
    info = subprocess.run(["capinfos", str(out)], capture_output=True, text=True, check=True).stdout
    assert summary["key_id"] in info


def test_payload_drop(captures, tmp_path):
    out = tmp_path / "anon.pcapng"
    run("anonymize", "--payload", "drop", "--key-file", captures.key_file, captures.span_ns, out, check=True)
    assert b"GET /" in captures.span_ns.read_bytes()
    assert b"GET /" not in out.read_bytes()
    rows = fields(out, "frame.cap_len", "frame.len", display_filter="tcp.len > 0")
    assert rows and all(int(c) < int(w) for c, w in rows)


@pytest.mark.parametrize("problem", ["world-readable", "short", "missing"])
def test_bad_keys_refused(captures, tmp_path, problem):
    key = tmp_path / "key"
    if problem == "world-readable":
        key.write_text(KEY_HEX)
        key.chmod(0o644)
    elif problem == "short":
        key.write_text(KEY_HEX[:40])
        key.chmod(0o600)
    out = tmp_path / "anon.pcapng"
    proc = run("anonymize", "--key-file", key, captures.span_ns, out)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(key) in line
    assert not out.exists()


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _fix_l4(frame: bytes) -> bytes | None:
    """The frame with a correct TCP/UDP checksum over IPv4 (None if it is neither)."""
    if frame[12:14] != b"\x08\x00" or frame[23] not in (6, 17):
        return None
    b = bytearray(frame)
    hl = (b[14] & 0x0F) * 4
    total = int.from_bytes(b[16:18], "big")
    l4 = 14 + hl
    seg_len = total - hl
    off = 16 if b[23] == 6 else 6
    b[l4 + off: l4 + off + 2] = b"\0\0"
    pseudo = bytes(b[26:34]) + bytes([0, b[23]]) + seg_len.to_bytes(2, "big")
    b[l4 + off: l4 + off + 2] = _csum(pseudo + bytes(b[l4: l4 + seg_len])).to_bytes(2, "big")
    return bytes(b)


def test_correct_transport_checksums_stay_correct(captures, tmp_path):
    pf = parse_pcap(captures.host_ns.read_bytes())
    records = [(*r[:4], f) for r in pf.records if (f := _fix_l4(r[4])) is not None]
    src = tmp_path / "fixed.pcap"
    src.write_bytes(build_pcap(pf, records))
    out = tmp_path / "anon.pcapng"
    run("anonymize", "--key-file", captures.key_file, src, out, check=True)
    prefs = ("tcp.check_checksum:TRUE", "udp.check_checksum:TRUE")
    for f in (src, out):
        status = {v for row in fields(f, "tcp.checksum.status", "udp.checksum.status", prefs=prefs)
                  for cell in row for v in cell.split(",") if v}
        assert status == {"1"}, f
    assert len(records) > 50
