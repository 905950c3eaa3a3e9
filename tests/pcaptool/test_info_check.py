"""info and check on real captures, compared with capinfos; check on damaged files."""

from __future__ import annotations

import json
import struct
import subprocess

import pytest

from tests.pcaptool.pcapfiles import one_error_line, parse_pcap, run

pytestmark = [pytest.mark.root, pytest.mark.netns]


def capinfos(path) -> dict[str, str]:
    out = subprocess.run(["capinfos", "-T", "-m", "-c", "-d", "-a", "-e", "-S", "-r", str(path)],
                         capture_output=True, text=True, check=True).stdout.strip().split(",")
    keys = ["file", "packets", "data", "first", "last"]
    return dict(zip(keys, out, strict=False))


@pytest.mark.parametrize("name", ["span_ns", "span_us", "span_ng", "mixed_ng"])
def test_info_agrees_with_capinfos(captures, name):
    path = getattr(captures, name)
    info = json.loads(run("info", "--json", path, check=True).stdout)
    peer = capinfos(path)
    assert info["packets"] == int(peer["packets"]) > 100
    assert info["wire_bytes"] == int(peer["data"])
    assert abs(info["first_ns"] / 1e9 - float(peer["first"])) < 1e-6
    assert abs(info["last_ns"] / 1e9 - float(peer["last"])) < 1e-6
    assert info["format"] == ("pcapng" if name.endswith("ng") else "pcap")
    assert info["damaged"] is False


def test_info_names_both_link_types_of_a_mixed_file(captures):
    info = json.loads(run("info", "--json", captures.mixed_ng, check=True).stdout)
    assert sorted(lt["linktype"] for lt in info["link_types"]) == [1, 101]
    assert info["interfaces"] == 2
    assert info["precision"] == "ns"


def test_check_valid_files(captures):
    proc = run("check", captures.span_ns, captures.span_us, captures.span_ng, captures.mixed_ng)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": valid,") == 4


def _damaged(captures, tmp_path, how: str):
    data = bytearray(captures.span_ns.read_bytes())
    pf = parse_pcap(bytes(data))
    off = pf.offsets[100]
    if how == "truncated":
        data = data[:-7]
    elif how == "bad-length":
        struct.pack_into("<I", data, off + 8, 0x7FFFFFF0)
    elif how == "garbage":
        data = data[:off] + bytes(range(200, 256)) * 3 + data[off:]
    path = tmp_path / f"{how}.pcap"
    path.write_bytes(bytes(data))
    return path, off


@pytest.mark.parametrize("how", ["truncated", "bad-length", "garbage"])
def test_check_reports_kind_offset_and_record(captures, tmp_path, how):
    path, off = _damaged(captures, tmp_path, how)
    proc = run("check", "--json", path)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "damaged at offset" in line
    report = json.loads(proc.stdout)
    assert report["status"] == "damaged"
    if how != "truncated":
        assert report["damage"]["offset"] == off
        assert report["damage"]["record"] == 101
        assert report["packets"] == 100
    else:
        assert report["damage"]["kind"] == "truncated"
    expected_kind = {"truncated": "truncated", "bad-length": "bad-length", "garbage": "bad-length"}[how]
    assert report["damage"]["kind"] == expected_kind


def test_check_pcapng_length_mismatch(captures, tmp_path):
    data = bytearray(captures.span_ng.read_bytes())
    # Walk to the 20th block and break its trailing length.
    off = 0
    for _ in range(20):
        off += struct.unpack_from("<I", data, off + 4)[0]
    length = struct.unpack_from("<I", data, off + 4)[0]
    struct.pack_into("<I", data, off + length - 4, length + 8)
    path = tmp_path / "mismatch.pcapng"
    path.write_bytes(bytes(data))
    proc = run("check", "--json", path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["damage"]["kind"] == "length-mismatch"
    assert report["damage"]["offset"] == off
