"""sluice-capture -r keeps what the file says: times after 2038 and the whole link-type field."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.capture.conftest import closed_files, start_writer

pytestmark = [pytest.mark.root]


def test_replay_keeps_times_after_2038_and_the_link_type_upper_bits(capture_binary, tmp_path: Path) -> None:
    # LINKTYPE_ETHERNET with "FCS length present, 4 bytes" in the upper bits, as libpcap defines them.
    network = 0x44000001
    frame = bytes(range(64))
    secs = [2147483647, 2147483648, 4294967295]
    src = tmp_path / "after2038.pcap"
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, network)
    for i, sec in enumerate(secs):
        data += struct.pack("<IIII", sec, 500000 + i, len(frame), len(frame)) + frame
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    w = start_writer(capture_binary, None, ["-r", str(src), "-w", str(out), "--format", "pcap"])
    assert w.proc.wait(timeout=60) == 0, w.stderr_text()
    w.stop()
    (copy,) = closed_files(out)
    got = copy.read_bytes()
    assert struct.unpack_from("<I", got, 20)[0] == network
    off, times = 24, []
    while off + 16 <= len(got):
        sec, frac, caplen, _ = struct.unpack_from("<IIII", got, off)
        times.append((sec, frac))
        off += 16 + caplen
    assert times == [(sec, (500000 + i) * 1000) for i, sec in enumerate(secs)]
