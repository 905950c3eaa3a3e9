"""repair against pcapfix on the same damage: at least as many original packets, none invented."""

from __future__ import annotations

import json
import random
import struct
import subprocess

import pytest

from tests.conftest import require_tool
from tests.pcaptool.pcapfiles import original_count, packets, parse_pcap, run

pytestmark = [pytest.mark.root, pytest.mark.netns]

# An original length below the captured length is not damage: libpcap and Wireshark read it
# (tests/pcaptool/test_corpus.py holds tcpdump's own files that have it).
PCAP_DAMAGE = ["zero-magic", "zero-header", "cut-last", "garbage", "bad-caplen", "zeroed-record", "several"]


def damage_pcap(data: bytes, how: str) -> bytes:
    pf = parse_pcap(data)
    b = bytearray(data)
    offs = pf.offsets
    rnd = random.Random(how)
    if how == "zero-magic":
        b[0:4] = bytes(4)
    elif how == "zero-header":
        b[0:24] = bytes(24)
    elif how == "cut-last":
        b = b[: offs[-1] + 16 + pf.records[-1][2] // 2]
    elif how == "garbage":
        b = b[: offs[50]] + rnd.randbytes(777) + b[offs[50]:]
    elif how == "bad-caplen":
        struct.pack_into("<I", b, offs[60] + 8, 0x00FFFFFF)
    elif how == "bad-origlen":
        struct.pack_into("<I", b, offs[70] + 12, 3)
    elif how == "zeroed-record":
        b[offs[80]: offs[80] + 30] = bytes(30)
    elif how == "several":
        struct.pack_into("<I", b, offs[30] + 8, 0xFFFFFFFF)
        b[offs[90]: offs[90] + 10] = rnd.randbytes(10)
        b = b[: offs[200]] + rnd.randbytes(100) + b[offs[200]:]
        b = b[:-5]
    return bytes(b)


def pcapfix(src, dst) -> bool:
    proc = subprocess.run(["pcapfix", "-o", str(dst), str(src)], capture_output=True, text=True, timeout=120)
    return dst.exists() and proc.returncode in (0, 1)


@pytest.mark.parametrize("source", ["span_ns", "span_us"])
@pytest.mark.parametrize("how", PCAP_DAMAGE)
def test_repair_beats_pcapfix_and_invents_nothing(captures, tmp_path, source, how):
    require_tool("pcapfix")
    good = getattr(captures, source)
    original = packets(good, tmp_path)
    bad = tmp_path / f"{how}.pcap"
    bad.write_bytes(damage_pcap(good.read_bytes(), how))
    assert run("check", bad).returncode in (1, 2)

    ours = tmp_path / "ours.pcap"
    proc = run("repair", "--json", bad, ours)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["damages"] >= 1
    assert run("check", ours).returncode == 0
    got, invented = original_count(packets(ours, tmp_path), original)
    assert invented == 0

    theirs = tmp_path / "pcapfix.pcap"
    peer_got = original_count(packets(theirs, tmp_path), original)[0] if pcapfix(bad, theirs) else 0
    assert got >= peer_got
    # What is lost is only what the damage destroyed.
    lost_at_most = {"cut-last": 1, "zeroed-record": 1, "several": 3}.get(how, 0)
    assert got >= len(original) - lost_at_most, summary


def test_pcapfix_loses_a_nanosecond_file_with_zeroed_magic_and_repair_does_not(captures, tmp_path):
    good = captures.span_ns
    bad = tmp_path / "nomagic.pcap"
    bad.write_bytes(damage_pcap(good.read_bytes(), "zero-magic"))
    original = packets(good, tmp_path)
    ours = tmp_path / "ours.pcap"
    summary = json.loads(run("repair", "--json", bad, ours, check=True).stdout)
    assert summary["header_inferred"] is True
    assert packets(ours, tmp_path) == original  # ns timestamps inferred from the data
    theirs = tmp_path / "pcapfix.pcap"
    peer = original_count(packets(theirs, tmp_path), original)[0] if pcapfix(bad, theirs) else 0
    assert peer == 0


def _blocks(data: bytes) -> list[int]:
    offs, off = [], 0
    while off + 8 <= len(data):
        offs.append(off)
        off += struct.unpack_from("<I", data, off + 4)[0]
    return offs


@pytest.mark.parametrize("how", ["leading-length", "trailing-length", "garbage", "cut-last", "broken-shb"])
def test_repair_pcapng(captures, tmp_path, how):
    good = captures.span_ng
    data = bytearray(good.read_bytes())
    blocks = _blocks(bytes(data))
    off = blocks[40]
    length = struct.unpack_from("<I", data, off + 4)[0]
    if how == "leading-length":
        struct.pack_into("<I", data, off + 4, length + 64)
    elif how == "trailing-length":
        struct.pack_into("<I", data, off + length - 4, 12)
    elif how == "garbage":
        data = data[:off] + random.Random(3).randbytes(301) + data[off:]
    elif how == "cut-last":
        data = data[:-9]
    elif how == "broken-shb":
        data[0:12] = bytes(12)
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(data))
    assert run("check", bad).returncode == (2 if how == "broken-shb" else 1)
    ours = tmp_path / "ours.pcapng"
    run("repair", bad, ours, check=True)
    assert run("check", ours).returncode == 0
    original = packets(good, tmp_path)
    got, invented = original_count(packets(ours, tmp_path), original)
    assert invented == 0
    assert got >= len(original) - (1 if how == "cut-last" else 0)
    theirs = tmp_path / "pcapfix.pcapng"
    if pcapfix(bad, theirs):
        try:
            peer_got = original_count(packets(theirs, tmp_path), original)[0]
        except AssertionError:
            peer_got = 0  # pcapfix wrote something editcap cannot read
        assert got >= peer_got


def test_repair_reads_and_writes_zstd(captures, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(damage_pcap(captures.span_ns.read_bytes(), "garbage"))
    zst = tmp_path / "bad.pcap.zst"
    subprocess.run(["zstd", "-q", "-o", str(zst), str(bad)], check=True)
    out = tmp_path / "fixed.pcap.zst"
    run("repair", zst, out, check=True)
    assert out.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    plain = tmp_path / "fixed.pcap"
    subprocess.run(["zstd", "-q", "-d", "-o", str(plain), str(out)], check=True)
    assert packets(plain, tmp_path) == packets(captures.span_ns, tmp_path)


@pytest.mark.parametrize("source", ["span_ns", "span_ng"])
def test_repair_skips_a_damaged_zstd_frame(captures, tmp_path, source):
    """Independent zstd frames (as sluice-capture writes them): corruption costs one frame."""
    data = getattr(captures, source).read_bytes()
    chunk = 32768
    frames = [subprocess.run(["zstd", "-q", "-c"], input=data[i:i + chunk], capture_output=True, check=True).stdout
              for i in range(0, len(data), chunk)]
    assert len(frames) >= 5
    blob = bytearray(b"".join(frames))
    mid = sum(len(f) for f in frames[:2]) + len(frames[2]) // 2
    blob[mid:mid + 40] = b"\xaa" * 40
    bad = tmp_path / "bad.pcap.zst"
    bad.write_bytes(bytes(blob))
    assert run("check", bad).returncode == 1
    out = tmp_path / "fixed.pcap"
    summary = json.loads(run("repair", "--json", "--compress", "none", bad, out, check=True).stdout)
    assert summary["damages"] >= 2  # the skipped frame and the record it cut
    original = packets(getattr(captures, source), tmp_path)
    got, invented = original_count(packets(out, tmp_path), original)
    assert invented == 0
    per_frame = len(original) * chunk // len(data) + 2
    assert got >= len(original) - 2 * per_frame  # at most the damaged frame and a record across its edge


@pytest.mark.parametrize("source", ["span_ns", "span_ng"])
def test_random_damage_campaign_never_behind_pcapfix(captures, tmp_path, source):
    """Random overwrites, zeroed runs, deleted runs and cut ends, 30 files: repair recovers at
    least as many original packets as pcapfix on every one of them."""
    require_tool("pcapfix")
    good = getattr(captures, source).read_bytes()
    original = packets(getattr(captures, source), tmp_path)
    ours_total = peer_total = 0
    for seed in range(30):
        rnd = random.Random(seed)
        b = bytearray(good)
        for _ in range(rnd.randrange(1, 6)):
            pos, n = rnd.randrange(200, len(b) - 64), rnd.randrange(1, 64)
            kind = rnd.randrange(3)
            if kind == 0:
                b[pos:pos + n] = rnd.randbytes(n)
            elif kind == 1:
                b[pos:pos + n] = bytes(n)
            else:
                del b[pos:pos + n]
        if rnd.random() < 0.3:
            b = b[: rnd.randrange(len(b) // 2, len(b))]
        ext = ".pcapng" if source == "span_ng" else ".pcap"
        bad, ours, theirs = tmp_path / f"bad{ext}", tmp_path / f"ours{ext}", tmp_path / f"pcapfix{ext}"
        bad.write_bytes(bytes(b))
        theirs.unlink(missing_ok=True)
        run("repair", bad, ours, check=True)
        assert run("check", ours).returncode == 0
        got = original_count(packets(ours, tmp_path), original)[0]
        try:
            peer = original_count(packets(theirs, tmp_path), original)[0] if pcapfix(bad, theirs) else 0
        except AssertionError:
            peer = 0  # pcapfix wrote something editcap cannot read
        assert got >= peer, f"seed {seed}: {got} < pcapfix {peer}"
        ours_total, peer_total = ours_total + got, peer_total + peer
    assert ours_total > peer_total
