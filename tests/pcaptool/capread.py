"""A plain reader of pcap and pcapng for the corpus test, independent of sluice-pcap's: every
packet as (timestamp ns or None, caplen, origlen, bytes). A pcap fraction of a second that is a
second or more is carried into the seconds (what the bits say; the peers print it wrapped)."""

from __future__ import annotations

import struct

Packet = tuple[int | None, int, int, bytes]


def _pcap(data: bytes) -> tuple[list[Packet], bool]:
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    off, out, valid = 24, [], True
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack_from(e + "IIII", data, off)
        if off + 16 + caplen > len(data):
            break
        valid &= frac < (10**9 if nano else 10**6)
        out.append((sec * 10**9 + (frac if nano else frac * 1000), caplen, origlen,
                    data[off + 16: off + 16 + caplen]))
        off += 16 + caplen
    return out, valid


def _tsresol(opts: bytes, e: str) -> int:
    i = 0
    while i + 4 <= len(opts):
        code, n = struct.unpack_from(e + "HH", opts, i)
        if code == 0:
            break
        if code == 9 and n >= 1:
            return opts[i + 4]
        i += 4 + ((n + 3) & ~3)
    return 6


def _units(resol: int) -> tuple[int, int]:
    """(numerator, denominator) turning a timestamp into ns."""
    if resol & 0x80:
        return 10**9, 2 ** (resol & 0x7F)
    v = resol & 0x7F
    return (10 ** (9 - v), 1) if v <= 9 else (1, 10 ** (v - 9))


def _pcapng(data: bytes) -> list[Packet]:
    off, out, e, ifs = 0, [], "<", []
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifs = []
        btype, n = struct.unpack_from(e + "II", data, off)
        if n < 12 or off + n > len(data):
            break
        body = data[off + 8: off + n - 4]
        if btype == 1:
            lt, _, snap = struct.unpack_from(e + "HHI", body)
            ifs.append((_units(_tsresol(body[8:], e)), snap))
        elif btype in (6, 2):
            if btype == 6:
                iface, hi, lo, caplen, origlen = struct.unpack_from(e + "IIIII", body)
            else:
                iface, _, hi, lo, caplen, origlen = struct.unpack_from(e + "HHIIII", body)
            (num, den), _ = ifs[iface]
            out.append(((hi << 32 | lo) * num // den, caplen, origlen, body[20:20 + caplen]))
        elif btype == 3:
            origlen = struct.unpack_from(e + "I", body)[0]
            caplen = min(origlen, len(body) - 4)
            if ifs and ifs[0][1]:
                caplen = min(caplen, ifs[0][1])
            out.append((None, caplen, origlen, body[4:4 + caplen]))
        off += n
    return out


def read(path) -> tuple[list[Packet], bool]:  # noqa: ANN001
    """The packets, and whether every timestamp field was in range."""
    data = open(path, "rb").read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return _pcapng(data), True
    return _pcap(data)
