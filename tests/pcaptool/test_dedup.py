"""dedup against editcap on the SPAN port's copies; copies that differ by TTL or VLAN tag."""

from __future__ import annotations

import json
import struct
import subprocess

import pytest

from tests.pcaptool.pcapfiles import PcapFile, build_pcap, packets, parse_pcap, run

pytestmark = [pytest.mark.root, pytest.mark.netns]


def editcap(args: list[str], src, dst) -> None:
    subprocess.run(["editcap", "-F", "nsecpcap", *args, str(src), str(dst)], check=True, capture_output=True)


def test_span_copies_same_as_editcap(captures, tmp_path):
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "editcap.pcap"
    summary = json.loads(run("dedup", "--json", captures.span_ns, ours, check=True).stdout)
    editcap(["-w", "0.001"], captures.span_ns, theirs)
    assert ours.read_bytes() == theirs.read_bytes()
    # The SPAN port saw h1<->h2 twice: about half the packets are copies.
    assert summary["duplicates"] > summary["packets_in"] // 3
    # After dedup the SPAN capture holds what h2 itself saw, less h3's broadcasts at most.
    assert summary["packets_out"] <= len(packets(captures.host_ns, tmp_path)) + 20


def test_window_packets_same_as_editcap_D(captures, tmp_path):
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "editcap.pcap"
    run("dedup", "--window-packets", "5", captures.span_ns, ours, check=True)
    editcap(["-D", "5"], captures.span_ns, theirs)
    assert ours.read_bytes() == theirs.read_bytes()


def _ipv4(data: bytes) -> int | None:
    return 14 if len(data) >= 34 and data[12:14] == b"\x08\x00" else None


def _fix_ip_checksum(ip: bytearray) -> None:
    hl = (ip[0] & 0x0F) * 4
    ip[10:12] = b"\0\0"
    s = sum(struct.unpack(f"!{hl // 2}H", bytes(ip[:hl])))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    ip[10:12] = struct.pack("!H", ~s & 0xFFFF)


def _routed_copies(pf: PcapFile) -> tuple[list, int]:
    """Every IPv4 packet followed 100 µs later by a copy one router hop further (TTL-1)."""
    out, copies = [], 0
    step = 100 if pf.nanosecond is False else 100_000
    for sec, frac, caplen, origlen, data in pf.records:
        out.append((sec, frac, caplen, origlen, data))
        if _ipv4(data) is not None and data[22] > 1:
            b = bytearray(data)
            b[22] -= 1
            ip = b[14:]
            _fix_ip_checksum(ip)
            b[14:] = ip
            out.append((sec, frac + step if frac + step < (10**9 if pf.nanosecond else 10**6) else frac,
                        caplen, origlen, bytes(b)))
            copies += 1
    return out, copies


def test_ttl_copies_found_which_editcap_cannot(captures, tmp_path):
    pf = parse_pcap(captures.host_ns.read_bytes())
    records, copies = _routed_copies(pf)
    src = tmp_path / "routed.pcap"
    src.write_bytes(build_pcap(pf, records))
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "editcap.pcap"
    summary = json.loads(run("dedup", "--json", src, ours, check=True).stdout)
    assert copies > 50
    assert summary["duplicates"] == copies
    assert ours.read_bytes() == captures.host_ns.read_bytes()  # exactly the originals remain
    editcap(["-w", "0.001"], src, theirs)
    assert len(packets(theirs, tmp_path)) == len(records)  # editcap removed none of them


def test_vlan_tagged_copies_only_with_ignore_vlan(captures, tmp_path):
    pf = parse_pcap(captures.host_ns.read_bytes())
    records, tagged = [], 0
    for sec, frac, caplen, origlen, data in pf.records:
        records.append((sec, frac, caplen, origlen, data))
        if frac + 1000 < 10**9:
            b = data[:12] + b"\x81\x00\x00\x64" + data[12:]
            records.append((sec, frac + 1000, caplen + 4, origlen + 4, b))
            tagged += 1
    src = tmp_path / "vlan.pcap"
    src.write_bytes(build_pcap(pf, records))
    plain = json.loads(run("dedup", "--json", src, tmp_path / "a.pcap", check=True).stdout)
    ignoring = json.loads(run("dedup", "--json", "--ignore-vlan", src, tmp_path / "b.pcap", check=True).stdout)
    assert plain["duplicates"] == 0
    assert ignoring["duplicates"] == tagged


def test_never_removes_different_packets(captures, tmp_path):
    """Packets equal but for one payload byte, or for the TTL of a non-IP frame, all stay."""
    pf = parse_pcap(captures.host_ns.read_bytes())
    records = []
    for sec, frac, caplen, origlen, data in pf.records:
        records.append((sec, frac, caplen, origlen, data))
        if frac + 10 < 10**9 and caplen > 60:
            b = bytearray(data)
            b[-1] ^= 0xFF
            records.append((sec, frac + 10, caplen, origlen, bytes(b)))
    src = tmp_path / "near.pcap"
    src.write_bytes(build_pcap(pf, records))
    out = tmp_path / "out.pcap"
    summary = json.loads(run("dedup", "--json", src, out, check=True).stdout)
    assert summary["duplicates"] == 0
    assert out.read_bytes() == src.read_bytes()


def test_window_bounds_what_counts_as_a_copy(captures, tmp_path):
    pf = parse_pcap(captures.host_ns.read_bytes())
    sec, frac, caplen, origlen, data = pf.records[0]
    records = [(sec, frac, caplen, origlen, data), (sec + 1, frac, caplen, origlen, data)]
    src = tmp_path / "late.pcap"
    src.write_bytes(build_pcap(pf, records))
    one_ms = json.loads(run("dedup", "--json", src, tmp_path / "a.pcap", check=True).stdout)
    two_s = json.loads(run("dedup", "--json", "--window", "2s", src, tmp_path / "b.pcap", check=True).stdout)
    assert (one_ms["duplicates"], two_s["duplicates"]) == (0, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_repeats_at_random_times_same_as_editcap(captures, tmp_path, seed):
    """A few frames repeated at random gaps around the window: what the window forgets and when."""
    import random

    pf = parse_pcap(captures.host_ns.read_bytes())
    frames = [r[4] for r in pf.records[:6]]
    rnd = random.Random(seed)
    t = pf.records[0][0] * 10**9
    records = []
    for _ in range(20000):
        t += rnd.choice([0, 100, 200_000, 900_000, 1_000_000, 1_000_001, 1_500_000])
        f = rnd.choice(frames)
        records.append((t // 10**9, t % 10**9, len(f), len(f), f))
    pf.nanosecond = True
    src = tmp_path / "repeats.pcap"
    src.write_bytes(build_pcap(pf, records))
    for ours_args, peer_args in ((["--window", "1ms"], ["-w", "0.001"]), (["--window-packets", "7"], ["-D", "7"])):
        ours, theirs = tmp_path / "ours.pcap", tmp_path / "editcap.pcap"
        run("dedup", *ours_args, src, ours, check=True)
        editcap(peer_args, src, theirs)
        assert ours.read_bytes() == theirs.read_bytes(), ours_args
