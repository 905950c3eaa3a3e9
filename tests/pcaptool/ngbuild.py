"""Building small pcapng files byte by byte for the sluice-pcap tests (sections, interfaces with
any if_tsresol, enhanced and simple packet blocks), the way the format document lays them out."""

from __future__ import annotations

import struct


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def shb(major: int = 1, minor: int = 0) -> bytes:
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, major, minor, -1))


def idb(linktype: int = 1, tsresol: int = 6, snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol != 6:
        opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    return _block(1, struct.pack("<HHI", linktype, 0, snaplen) + opts)


def epb(iface: int, ts: int, data: bytes, origlen: int | None = None) -> bytes:
    """ts in the interface's units."""
    body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if origlen is None else origlen) + data
    return _block(6, body)


def spb(data: bytes) -> bytes:
    return _block(3, struct.pack("<I", len(data)) + data)
