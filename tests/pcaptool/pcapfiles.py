"""Reading and building capture files for the sluice-pcap tests.

Packets are read back through a peer (editcap normalises any output to nanosecond pcap) and a
plain pcap parser here, so a test never judges sluice-pcap with sluice-pcap's own reader.
Damaged files are built from good ones by editing bytes, the way real damage looks.
"""

from __future__ import annotations

import struct
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SLUICE_PCAP

Packet = tuple[int, bytes]  # (timestamp ns, frame bytes)


@dataclass
class PcapFile:
    nanosecond: bool
    linktype: int
    snaplen: int
    records: list[tuple[int, int, int, int, bytes]]  # sec, frac, caplen, origlen, data
    offsets: list[int]


def parse_pcap(data: bytes) -> PcapFile:
    """A little-endian pcap (what tcpdump and editcap write here)."""
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"not a little-endian pcap: {magic:#x}")
    snaplen, linktype = struct.unpack_from("<II", data, 16)
    off, records, offsets = 24, [], []
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack_from("<IIII", data, off)
        offsets.append(off)
        records.append((sec, frac, caplen, origlen, bytes(data[off + 16: off + 16 + caplen])))
        off += 16 + caplen
    return PcapFile(magic == 0xA1B23C4D, linktype, snaplen, records, offsets)


def time_groups(records: list, ts_fields: int = 2) -> list[tuple[tuple, list]]:
    """Records as runs of equal timestamps (their first `ts_fields` fields), each run sorted: the
    order two mergers may differ in (on a tie mergecap puts the later input first,
    `sluice-pcap merge` the earlier one)."""
    groups: list[tuple[tuple, list]] = []
    for rec in records:
        ts = tuple(rec[:ts_fields])
        if groups and groups[-1][0] == ts:
            groups[-1][1].append(rec)
        else:
            groups.append((ts, [rec]))
    return [(ts, sorted(recs)) for ts, recs in groups]


def build_pcap(pf: PcapFile, records: list[tuple[int, int, int, int, bytes]] | None = None) -> bytes:
    magic = 0xA1B23C4D if pf.nanosecond else 0xA1B2C3D4
    out = bytearray(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, pf.snaplen, pf.linktype))
    for sec, frac, caplen, origlen, data in records if records is not None else pf.records:
        out += struct.pack("<IIII", sec, frac, caplen, origlen) + data
    return bytes(out)


def packets(path: Path, tmp: Path) -> list[Packet]:
    """Every packet of any capture editcap can read, as (ns timestamp, bytes)."""
    norm = tmp / f"norm-{path.name}.pcap"
    proc = subprocess.run(["editcap", "-F", "nsecpcap", str(path), str(norm)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"editcap cannot read {path}: {proc.stderr.strip()}")
    pf = parse_pcap(norm.read_bytes())
    return [(sec * 1_000_000_000 + frac, data) for sec, frac, _, _, data in pf.records]


def original_count(recovered: list[Packet], original: list[Packet]) -> tuple[int, int]:
    """(packets of `recovered` that are original packets, packets that are neither an original
    nor a cut-off prefix of one, i.e. invented)."""
    pool = Counter(original)
    good = invented = 0
    for p in recovered:
        if pool[p] > 0:
            pool[p] -= 1
            good += 1
        elif not any(ts == p[0] and data.startswith(p[1]) for ts, data in original):
            invented += 1
    return good, invented


def run(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(SLUICE_PCAP), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"sluice-pcap {' '.join(map(str, args))}: rc {proc.returncode}: {proc.stderr}")
    return proc


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a failed run: exactly one line, no traceback or sanitizer report."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {proc.stderr!r}"
    assert lines[0].startswith("sluice-pcap "), lines[0]
    return lines[0]
