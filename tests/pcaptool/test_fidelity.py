"""sluice-pcap never changes data silently (issue 12): each test here failed before its fix.

Files are built byte by byte (pcapfiles.build_pcap, ngbuild) so each defect is shown on the
smallest input that has it; peers (editcap, tshark) judge the outputs where they can.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

from tests.pcaptool import ngbuild
from tests.pcaptool.pcapfiles import PcapFile, build_pcap, one_error_line, packets, parse_pcap, run

YEAR_2100 = 4102444800
T0 = 1_700_000_000
# An 802.1D BPDU as a switch sends it every 2 s, always the same bytes.
BPDU = bytes.fromhex("0180c2000000" "001122334455" "0026" "424203" "000000000080000011223344550000000080"
                     "00001122334455800100001400020000") + bytes(8)


def _pcap(records: list[tuple[int, int, bytes]], nanosecond: bool = False, linktype: int = 1) -> bytes:
    pf = PcapFile(nanosecond, linktype, 65535, [], [])
    return build_pcap(pf, [(s, f, len(d), len(d), d) for s, f, d in records])


def _editcap_w(src: Path, dst: Path) -> int:
    subprocess.run(["editcap", "-F", "pcap", "-w", "0.001", str(src), str(dst)], check=True, capture_output=True)
    return len(parse_pcap(dst.read_bytes()).records)


# ---------------------------------------------------------------- dedup and time going backwards


def test_dedup_window_does_not_freeze_after_a_timestamp_from_the_future(tmp_path: Path) -> None:
    # 14 identical BPDUs 2 s apart; the first one's clock says 2100.
    recs = [(YEAR_2100 if i == 0 else T0 + 2 * i, 0, BPDU) for i in range(14)]
    src = tmp_path / "stp.pcap"
    src.write_bytes(_pcap(recs))
    out = tmp_path / "out.pcap"
    summary = json.loads(run("dedup", "--json", src, out, check=True).stdout)
    assert summary["duplicates"] == 0
    assert summary["packets_out"] == _editcap_w(src, tmp_path / "peer.pcap") == 14


def test_dedup_window_stays_bounded_after_time_goes_back(tmp_path: Path) -> None:
    # A clock step back by an hour: identical keepalives 10 ms apart before and after it.
    recs = [(T0 + 3600, 0, BPDU)] + [(T0 + i // 100, (i % 100) * 10_000, BPDU) for i in range(3000)]
    src = tmp_path / "step.pcap"
    src.write_bytes(_pcap(recs))
    summary = json.loads(run("dedup", "--json", src, tmp_path / "out.pcap", check=True).stdout)
    assert summary["duplicates"] == 0


def test_dedup_copy_within_the_window_before_its_original(tmp_path: Path) -> None:
    # Merged SPAN files: the copy of a frame arrives in file order after it but stamped 300 µs
    # earlier (the other box's clock). It is within the window of its original: a copy.
    other = BPDU[:-1] + b"\x01"
    recs = [(T0, 500, BPDU), (T0, 200, BPDU), (T0, 900, other), (T0 - 5, 900, other)]
    src = tmp_path / "merged.pcap"
    src.write_bytes(_pcap(recs))
    out = tmp_path / "out.pcap"
    summary = json.loads(run("dedup", "--json", src, out, check=True).stdout)
    assert summary["duplicates"] == 1
    kept = [(s, f) for s, f, _, _, _ in parse_pcap(out.read_bytes()).records]
    assert kept == [(T0, 500), (T0, 900), (T0 - 5, 900)]


# ---------------------------------------------------------------- nanoseconds never cut

KEY_HEX = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202"


def _udp_frame(src: bytes, dst: bytes, payload: bytes = b"hello") -> bytes:
    udp = struct.pack("!HHHH", 40000, 53, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst))
    s = sum(struct.unpack("!10H", bytes(ip)))
    s = (s & 0xFFFF) + (s >> 16)
    ip[10:12] = struct.pack("!H", ~s & 0xFFFF)
    return b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\x08\x00" + bytes(ip) + udp


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    return key


def _us_then_ns_pcapng(n: int = 42) -> tuple[bytes, list[int]]:
    """A µs section followed by a ns section (two captures concatenated, as cat does)."""
    data, times = ngbuild.shb() + ngbuild.idb(1, 6), []
    for i in range(n):
        us = T0 * 1_000_000 + i * 1000 + 7
        data += ngbuild.epb(0, us, _udp_frame(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2 + i % 3])))
        times.append(us * 1000)
    data += ngbuild.shb() + ngbuild.idb(1, 9)
    for i in range(n):
        ns = (T0 + 10) * 1_000_000_000 + i * 1_000_003 + 123
        data += ngbuild.epb(0, ns, _udp_frame(bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])))
        times.append(ns)
    return data, times


def test_no_command_cuts_a_later_nanosecond_section_to_microseconds(tmp_path: Path) -> None:
    data, times = _us_then_ns_pcapng()
    src = tmp_path / "us-then-ns.pcapng"
    src.write_bytes(data)
    jobs = {"convert": [], "convert-pcap": ["--format", "pcap"], "dedup": [], "repair": [],
            "anonymize": ["--key-file", str(_key(tmp_path))]}
    for name, extra in jobs.items():
        out = tmp_path / f"{name}.out"
        run(name.split("-")[0], *extra, src, out, check=True)
        assert [ts for ts, _ in packets(out, tmp_path)] == times, name


# ---------------------------------------------------------------- Simple Packet Blocks have no time


def _blocks(data: bytes) -> list[int]:
    off, types = 0, []
    while off + 8 <= len(data):
        btype, n = struct.unpack_from("<II", data, off)
        types.append(btype)
        off += n
    return types


def test_simple_packet_blocks_get_no_invented_time(tmp_path: Path) -> None:
    frame = _udp_frame(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    us = (T0 + 100) * 1_000_000
    src = tmp_path / "spb.pcapng"
    src.write_bytes(ngbuild.shb() + ngbuild.idb(1, 6) + ngbuild.epb(0, us, frame) + ngbuild.spb(frame)
                    + ngbuild.spb(frame) + ngbuild.epb(0, us + 5_000_000, frame))
    info = json.loads(run("info", "--json", src, check=True).stdout)
    assert info["packets"] == 4 and info["packets_without_timestamp"] == 2
    assert info["first_ns"] == us * 1000 and info["last_ns"] == (us + 5_000_000) * 1000
    assert "2 without a timestamp" in run("info", src, check=True).stdout

    # Copies stay Simple Packet Blocks; pcap cannot hold "no time" and is refused.
    ng = tmp_path / "copy.pcapng"
    run("convert", src, ng, check=True)
    assert _blocks(ng.read_bytes()).count(3) == 2
    pcap = tmp_path / "copy.pcap"
    proc = run("convert", "--format", "pcap", src, pcap)
    assert proc.returncode == 1 and "no timestamp" in one_error_line(proc)
    assert not pcap.exists() and list(tmp_path.glob(".copy.pcap*")) == []

    # dedup: identical packets without a time are never in a time window with each other.
    summary = json.loads(run("dedup", "--json", src, tmp_path / "dd.pcapng", check=True).stdout)
    assert summary["duplicates"] == 0 and summary["not_compared_without_timestamp"] == 2

    # merge: they stay behind the packet before them in their input, never at 1970.
    other = tmp_path / "other.pcapng"
    other.write_bytes(ngbuild.shb() + ngbuild.idb(1, 6) + ngbuild.epb(0, us - 1, frame)
                      + ngbuild.epb(0, us + 1, frame))
    merged = tmp_path / "merged.pcapng"
    run("merge", "-o", merged, src, other, check=True)
    assert _blocks(merged.read_bytes())[2:] == [6, 6, 3, 3, 6, 6]
    only_spb = tmp_path / "only-spb.pcapng"
    only_spb.write_bytes(ngbuild.shb() + ngbuild.idb(1, 6) + ngbuild.spb(frame))
    proc = run("merge", "-o", tmp_path / "m2.pcapng", only_spb, other)
    assert proc.returncode == 1 and "cannot be placed by time" in one_error_line(proc)


def test_merge_equal_timestamps_keep_the_order_of_the_inputs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    fa = _udp_frame(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 9]))
    fb = _udp_frame(bytes([198, 51, 100, 1]), bytes([198, 51, 100, 9]))
    a.write_bytes(_pcap([(T0, 5, fa), (T0, 7, fa)]))
    b.write_bytes(_pcap([(T0, 5, fb), (T0, 6, fb)]))
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "mergecap.pcap"
    run("merge", "-o", ours, a, b, check=True)
    assert [d for *_, d in parse_pcap(ours.read_bytes()).records] == [fa, fb, fb, fa]
    # mergecap puts the later input first on a tie; everything else is the same.
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(theirs), str(a), str(b)], check=True, capture_output=True)
    assert [d for *_, d in parse_pcap(theirs.read_bytes()).records] == [fb, fa, fb, fa]
