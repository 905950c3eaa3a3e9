"""A small independent reader of pcap/pcapng files, so that the tests check Sluice's files with
code that shares nothing with the C writer."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

PCAP_NS = 0xA1B23C4D
PCAP_US = 0xA1B2C3D4


@dataclass(frozen=True)
class Packet:
    ts_ns: int
    origlen: int
    data: bytes


@dataclass
class CaptureFile:
    kind: str  # "pcap" or "pcapng"
    packets: list[Packet]
    block_types: list[int] = field(default_factory=list)
    shb_options: dict[int, list[bytes]] = field(default_factory=dict)
    idb_options: dict[int, list[bytes]] = field(default_factory=dict)
    isb_options: dict[int, list[bytes]] = field(default_factory=dict)
    snaplen: int = 0


def _options(buf: bytes) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    off = 0
    while off + 4 <= len(buf):
        code, length = struct.unpack_from("<HH", buf, off)
        if code == 0:
            break
        out.setdefault(code, []).append(buf[off + 4 : off + 4 + length])
        off += 4 + ((length + 3) & ~3)
    return out


def parse_pcapng(data: bytes) -> CaptureFile:
    cf = CaptureFile("pcapng", [])
    off = 0
    tsresol = 6
    while off < len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        assert blen >= 12 and blen % 4 == 0 and off + blen <= len(data), f"bad block at {off}"
        (trail,) = struct.unpack_from("<I", data, off + blen - 4)
        assert trail == blen, f"block at {off}: trailing length {trail} != {blen}"
        body = data[off + 8 : off + blen - 4]
        cf.block_types.append(btype)
        if btype == 0x0A0D0D0A:
            assert struct.unpack_from("<I", body, 0)[0] == 0x1A2B3C4D
            cf.shb_options = _options(body[16:])
        elif btype == 1:
            _link, _res, cf.snaplen = struct.unpack_from("<HHI", body, 0)
            cf.idb_options = _options(body[8:])
            tsresol = cf.idb_options.get(9, [bytes([6])])[0][0]
        elif btype == 6:
            _ifid, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", body, 0)
            ts = (hi << 32) | lo
            ts_ns = ts if tsresol == 9 else ts * 1000
            cf.packets.append(Packet(ts_ns, origlen, bytes(body[20 : 20 + caplen])))
        elif btype == 5:
            cf.isb_options = _options(body[12:])
        off += blen
    return cf


def parse_pcap(data: bytes) -> CaptureFile:
    magic, _maj, _min, _zone, _sig, snaplen, _link = struct.unpack_from("<IHHiIII", data, 0)
    assert magic in (PCAP_NS, PCAP_US), hex(magic)
    mult = 1 if magic == PCAP_NS else 1000
    cf = CaptureFile("pcap", [], snaplen=snaplen)
    off = 24
    while off < len(data):
        sec, frac, caplen, origlen = struct.unpack_from("<IIII", data, off)
        assert off + 16 + caplen <= len(data), f"record at {off} cut off"
        cf.packets.append(Packet(sec * 1_000_000_000 + frac * mult, origlen, data[off + 16 : off + 16 + caplen]))
        off += 16 + caplen
    return cf


def read_capture(path: Path) -> CaptureFile:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = decompress_frames(data)
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return parse_pcapng(data)
    return parse_pcap(data)


def decompress_frames(data: bytes) -> bytes:
    """Decompresses a file of concatenated independent zstd frames, checking each one alone."""
    out = bytearray()
    dctx = zstandard.ZstdDecompressor()
    off = 0
    while off < len(data):
        size = zstandard.frame_content_size(data[off:])
        obj = dctx.decompressobj()
        chunk = obj.decompress(data[off:])
        assert size in (-1, len(chunk)), "frame content size mismatch"
        out += chunk
        consumed = len(data) - off - len(obj.unused_data)
        assert consumed > 0
        off += consumed
    return bytes(out)


def packets_of(paths: list[Path]) -> list[Packet]:
    out: list[Packet] = []
    for p in paths:
        out.extend(read_capture(p).packets)
    return out
