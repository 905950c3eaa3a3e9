"""anonymize on every libpcap link type that carries IP, IPv6 extension headers that hold
addresses, and what it cannot parse (issue 12: "anonymised must mean anonymised").

Each frame is built here with correct checksums; after anonymisation no original address may be
left anywhere in the file's bytes, every checksum must still be right (computed here, by the
RFCs' rules: the pseudo-header holds the final destination of a routing header and the home
address of a home address option), and --payload drop must leave no payload byte."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.pcaptool import ngbuild
from tests.pcaptool.pcapfiles import one_error_line, run
from tests.pcaptool.test_fidelity import KEY_HEX, T0

V4_SRC, V4_DST = bytes([192, 0, 2, 10]), bytes([198, 51, 100, 20])
V6 = [bytes.fromhex(f"20010db8000000{i:02x}00000000000000{i:02x}") for i in range(1, 8)]
SECRET = b"GET /secret-path HTTP/1.1\r\nHost: intranet\r\n\r\n"


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _udp(src: bytes, dst: bytes, payload: bytes = SECRET) -> bytes:
    u = bytearray(struct.pack("!HHHH", 40000, 80, 8 + len(payload), 0) + payload)
    if len(src) == 4:
        ph = src + dst + struct.pack("!BBH", 0, 17, len(u))
    else:
        ph = src + dst + struct.pack("!IxxxB", len(u), 17)
    c = _csum(ph + bytes(u)) or 0xFFFF
    u[6:8] = struct.pack("!H", c)
    return bytes(u)


def ipv4(src: bytes = V4_SRC, dst: bytes = V4_DST, options: bytes = b"", final: bytes | None = None) -> bytes:
    udp = _udp(src, final or dst)
    hl = 20 + len(options)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(udp), 1, 0, 64, 17, 0, src, dst)
                   + options)
    ip[10:12] = struct.pack("!H", _csum(bytes(ip)))
    return bytes(ip) + udp


def ipv6(src: bytes = V6[0], dst: bytes = V6[1], ext: bytes = b"", first_next: int = 17,
         psrc: bytes | None = None, pdst: bytes | None = None) -> bytes:
    udp = _udp(psrc or src, pdst or dst)
    return struct.pack("!IHBB", 0x60000000, len(ext) + len(udp), first_next, 64) + src + dst + ext + udp


def srh(segments: list[bytes], left: int) -> bytes:
    n = len(segments)
    return struct.pack("!BBBBBBH", 17, 2 * n, 4, left, n - 1, 0, 0) + b"".join(segments)


def rh2(home: bytes) -> bytes:
    return struct.pack("!BBBBI", 17, 2, 2, 1, 0) + home


def hao(home: bytes) -> bytes:
    # Destination options: PadN(2) then the home address option (type 201, 16 bytes): 24 bytes.
    return struct.pack("!BB", 17, 2) + b"\x01\x02\0\0" + struct.pack("!BB", 201, 16) + home


ETH = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02"


def eth(et: int, payload: bytes, tags: bytes = b"") -> bytes:
    return ETH + tags + struct.pack("!H", et) + payload


def mpls(payload: bytes) -> bytes:
    return struct.pack("!II", 100 << 12 | 64, 200 << 12 | 0x100 | 64) + payload


def sll(et: int, payload: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", et) + payload


def sll2(et: int, payload: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", et, 0, 1, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + payload


def wifi(payload: bytes, et: int = 0x0800) -> bytes:
    # QoS data frame, to the DS: header 26 bytes, then LLC/SNAP.
    hdr = b"\x88\x01" + b"\0\0" + b"\x02\0\0\0\0\x03" + b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\0\0" + b"\0\0"
    return hdr + b"\xaa\xaa\x03\0\0\0" + struct.pack("!H", et) + payload


def radiotap(frame: bytes) -> bytes:
    return struct.pack("<BBHI", 0, 0, 8, 0) + frame


def arp(op: int = 1, et: int = 0x0806) -> bytes:
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + b"\x02\0\0\0\0\x01" + V4_SRC + b"\0" * 6 + V4_DST
    return eth(et, body)


V4, V6P = ipv4(), ipv6()
CASES: dict[str, tuple[int, bytes]] = {
    "null-le": (0, struct.pack("<I", 2) + V4),
    "null-v6-bsd": (0, struct.pack("<I", 30) + V6P),
    "loop": (108, struct.pack("!I", 2) + V4),
    "raw": (101, V4),
    "raw-v6": (101, V6P),
    "raw-12": (12, V4),
    "ipv4-228": (228, V4),
    "ipv6-229": (229, V6P),
    "ppp": (9, b"\xff\x03\x00\x21" + V4),
    "ppp-hdlc-v6": (50, b"\xff\x03\x00\x57" + V6P),
    "cisco-hdlc": (104, b"\x0f\x00\x08\x00" + V4),
    "sll": (113, sll(0x0800, V4)),
    "sll2-v6": (276, sll2(0x86DD, V6P)),
    "ether-vlan": (1, eth(0x0800, V4, b"\x81\x00\x00\x0a")),
    "ether-qinq": (1, eth(0x86DD, V6P, b"\x88\xa8\x00\x64\x81\x00\x00\x0a")),
    "ether-mpls": (1, eth(0x8847, mpls(V4))),
    "ether-mpls-v6": (1, eth(0x8847, mpls(V6P))),
    "ether-pppoe": (1, eth(0x8864, struct.pack("!BBHH", 0x11, 0, 1, len(V4) + 2) + b"\x00\x21" + V4)),
    "ether-snap": (1, ETH + struct.pack("!H", 8 + len(V4)) + b"\xaa\xaa\x03\0\0\0\x08\x00" + V4),
    "ether-gre": (1, eth(0x0800, bytes(ipv4()[:9]) + b"\x2f" + bytes(10) + bytes(4) + bytes(4))),  # replaced below
    "ether-macsec-clear": (1, eth(0x88E5, b"\x20\x00" + struct.pack("!I", 1) + bytes(8) + b"\x08\x00" + V4)),
    "80211": (105, wifi(V4)),
    "radiotap-v6": (127, radiotap(wifi(V6P, 0x86DD))),
    "arp": (1, arp()),
    "rarp": (1, arp(3, 0x8035)),
    "v4-source-route": (1, eth(0x0800, ipv4(options=b"\x83\x0b\x04" + bytes([203, 0, 113, 1]) + bytes([203, 0, 113, 2])
                                              + b"\0", final=bytes([203, 0, 113, 2])))),
    "v6-srh": (1, eth(0x86DD, ipv6(dst=V6[2], ext=srh([V6[3], V6[2], V6[4]], 2), first_next=43, pdst=V6[3]))),
    "v6-rh2-hao": (1, eth(0x86DD, ipv6(src=V6[5], dst=V6[6], ext=rh2(V6[4])[:1] + rh2(V6[4])[1:], first_next=43,
                                       pdst=V6[4]))),
    "v6-home-address": (1, eth(0x86DD, ipv6(src=V6[5], dst=V6[6], ext=hao(V6[3]), first_next=60, psrc=V6[3]))),
}


def _gre_frame() -> bytes:
    inner = ipv4(bytes([203, 0, 113, 50]), bytes([203, 0, 113, 60]))
    gre = struct.pack("!HH", 0, 0x0800) + inner
    hl = 20
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, hl + len(gre), 1, 0, 64, 47, 0, V4_SRC, V4_DST))
    ip[10:12] = struct.pack("!H", _csum(bytes(ip)))
    return eth(0x0800, bytes(ip) + gre)


CASES["ether-gre"] = (1, _gre_frame())

ADDRESSES = [V4_SRC, V4_DST, bytes([203, 0, 113, 1]), bytes([203, 0, 113, 2]), bytes([203, 0, 113, 50]),
             bytes([203, 0, 113, 60]), *V6]


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    return key


def _records(path: Path) -> list[bytes]:
    data, off, out = path.read_bytes(), 0, []
    while off + 12 <= len(data):
        btype, n = struct.unpack_from("<II", data, off)
        if btype == 6:
            caplen = struct.unpack_from("<I", data, off + 20)[0]
            out.append(data[off + 28: off + 28 + caplen])
        off += n
    return out


def _find_ip(frame: bytes) -> int:
    """Offset of the first IP header that starts a packet we built (a search, independent of the tool)."""
    for off in range(len(frame) - 20):
        if frame[off] == 0x45 and struct.unpack_from("!H", frame, off + 2)[0] == len(frame) - off:
            return off
        if frame[off] >> 4 == 6 and struct.unpack_from("!H", frame, off + 4)[0] == len(frame) - off - 40:
            return off
    return -1


def _udp_ok(frame: bytes, case: str) -> bool:
    """The UDP checksum (of the innermost packet) is right by the RFC rules."""
    off = _find_ip(frame)
    if off < 0:
        return True
    if case == "ether-gre":
        off = off + 24
    ip = frame[off:]
    if ip[0] >> 4 == 4:
        hl = (ip[0] & 15) * 4
        dst = ip[16:20]
        if hl > 20 and ip[20] == 0x83:
            dst = ip[20 + ip[21] - 5: 20 + ip[21] - 1] if ip[21] >= 7 else dst
        if _csum(bytes(ip[:hl])) != 0:
            return False
        udp = ip[hl:]
        return _csum(ip[12:16] + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp) == 0
    src, dst, nxt, off6 = ip[8:24], ip[24:40], ip[6], 40
    while nxt in (43, 60):
        length = (ip[off6 + 1] + 1) * 8
        if nxt == 43 and ip[off6 + 3] > 0:
            n = ip[off6 + 1] // 2
            dst = ip[off6 + 8: off6 + 24] if ip[off6 + 2] == 4 else ip[off6 + 8 + 16 * (n - 1): off6 + 8 + 16 * n]
        if nxt == 60:
            o = off6 + 2
            while o < off6 + length:
                if ip[o] == 201:
                    src = ip[o + 2: o + 18]
                o += 1 if ip[o] == 0 else ip[o + 1] + 2
        nxt, off6 = ip[off6], off6 + length
    udp = ip[off6:]
    return _csum(src + dst + struct.pack("!IxxxB", len(udp), 17) + udp) == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_address_anonymised_checksums_kept(case: str, tmp_path: Path) -> None:
    linktype, frame = CASES[case]
    assert _udp_ok(frame, case), "the test's own frame is wrong"
    src = tmp_path / "in.pcapng"
    src.write_bytes(ngbuild.shb() + ngbuild.idb(linktype, 6) + ngbuild.epb(0, T0 * 10**6, frame))
    out = tmp_path / "out.pcapng"
    summary = json.loads(run("anonymize", "--json", "--key-file", _key(tmp_path), src, out, check=True).stdout)
    assert summary["packets_out"] == 1 and summary["unparsed_left_out"] == 0
    (got,) = _records(out)
    for addr in ADDRESSES:
        assert addr not in got, f"{case}: {addr.hex()} still in clear"
    assert _udp_ok(got, case), f"{case}: a checksum went wrong"
    if "arp" not in case:
        dropped = tmp_path / "drop.pcapng"
        run("anonymize", "--payload", "drop", "--key-file", _key(tmp_path), src, dropped, check=True)
        (kept,) = _records(dropped)
        assert b"secret" not in kept and len(kept) < len(frame)


def test_what_cannot_be_parsed_is_left_out_or_an_error_with_strict(tmp_path: Path) -> None:
    good = CASES["raw"][1]
    src = tmp_path / "mixed.pcapng"
    # Interface 0 raw IP, interface 1 a link type the tool does not know (DOCSIS, 143).
    src.write_bytes(ngbuild.shb() + ngbuild.idb(101, 6) + ngbuild.idb(143, 6)
                    + ngbuild.epb(0, T0 * 10**6, good) + ngbuild.epb(1, T0 * 10**6 + 1, bytes(6) + good)
                    + ngbuild.epb(0, T0 * 10**6 + 2, good[:15]))
    out = tmp_path / "out.pcapng"
    proc = run("anonymize", "--key-file", _key(tmp_path), src, out, check=True)
    assert "packets in 3, out 1" in proc.stdout and "2 packets left out" in proc.stdout
    data = out.read_bytes()
    assert V4_SRC not in data and V4_DST not in data
    strict = run("anonymize", "--strict", "--key-file", _key(tmp_path), src, tmp_path / "strict.pcapng")
    assert strict.returncode == 1 and "packet 2 (link type 143" in one_error_line(strict)
    assert not (tmp_path / "strict.pcapng").exists()


def test_flows_reads_the_same_link_types_and_counts_what_it_cannot_attribute(tmp_path: Path) -> None:
    names = sorted(CASES)
    data = ngbuild.shb()
    for name in names:
        data += ngbuild.idb(CASES[name][0], 6)
    data += ngbuild.idb(143, 6)
    for i, name in enumerate(names):
        data += ngbuild.epb(i, T0 * 10**6 + i, CASES[name][1])
    data += ngbuild.epb(len(names), T0 * 10**6 + 99, bytes(6) + CASES["raw"][1])
    src = tmp_path / "all.pcapng"
    src.write_bytes(data)
    summary = json.loads(run("flows", "--json", "-o", tmp_path / "f.csv", src, check=True).stdout)
    ip_cases = [n for n in names if "arp" not in n]
    assert summary["ip_packets"] == len(ip_cases)
    assert summary["not_attributed"] == 3  # ARP, RARP and the unknown link type
