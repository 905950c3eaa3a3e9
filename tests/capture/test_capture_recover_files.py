"""--recover on crafted files: what is whole is kept, what is not ours is left alone."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

from tests.capture.capfiles import read_capture


def block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def epb(ts: int, data: bytes) -> bytes:
    return block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data)


def test_recover_keeps_whole_records_and_leaves_foreign_files(capture_binary, tmp_path: Path) -> None:
    header = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + struct.pack("<HH", 0, 0))
    header += block(1, struct.pack("<HHI", 1, 0, 262144) + struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0))
    whole = header + epb(10**18, b"\x01" * 60) + epb(10**18 + 5, b"\x02" * 61)
    cut = epb(10**18 + 9, b"\x03" * 200)[:150]
    (tmp_path / "h_i_1.pcapng.part").write_bytes(whole + cut + bytes(8192))  # zeros: preallocated
    pcap = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
    pcap += struct.pack("<IIII", 7, 8, 60, 60) + b"\x04" * 60
    (tmp_path / "h_i_2.pcap.part").write_bytes(pcap + struct.pack("<IIII", 7, 9, 60, 60) + b"\x05" * 10)
    (tmp_path / "h_i_3.pcapng.part").write_bytes(b"")
    foreign = os.urandom(4096)
    (tmp_path / "notes.txt.part").write_bytes(foreign)
    closed = tmp_path / "h_i_0.pcapng"
    closed.write_bytes(whole + cut)  # not a .part: never touched, even when damaged

    proc = subprocess.run([str(capture_binary), "--recover", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1, proc  # one file could not be handled: the foreign one
    assert proc.stderr.strip().splitlines() == [
        f"sluice-capture: error: recover {tmp_path}/notes.txt.part: not a capture file, left alone"]
    events = {Path(d["part"]).name: d for d in map(json.loads, proc.stdout.splitlines())}
    assert set(events) == {"h_i_1.pcapng.part", "h_i_2.pcap.part", "h_i_3.pcapng.part"}

    assert (tmp_path / "h_i_1.pcapng").read_bytes() == whole
    assert events["h_i_1.pcapng.part"]["cut_bytes"] == len(cut) + 8192
    assert [p.data for p in read_capture(tmp_path / "h_i_1.pcapng").packets] == [b"\x01" * 60, b"\x02" * 61]
    assert (tmp_path / "h_i_2.pcap").read_bytes() == pcap
    assert events["h_i_3.pcapng.part"]["path"] is None and not (tmp_path / "h_i_3.pcapng.part").exists()
    assert (tmp_path / "notes.txt.part").read_bytes() == foreign
    assert closed.read_bytes() == whole + cut
