"""Files: naming, .part while written, rotation by size/time/SIGHUP, date folders, the ISB, snaplen
and header slicing, zstd frames, replay (-r), the libpcap backend; tshark reads all of it."""

from __future__ import annotations

import re
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.mounts import ramfs
from appliance.lab.harness.trafgen import Trafgen, udp_conf
from tests.capture.capfiles import decompress_frames, packets_of, parse_pcap, parse_pcapng, read_capture
from tests.capture.conftest import closed_files, mixed_traffic, start_writer
from tests.conftest import SLUICE_PCAP, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

NAME = re.compile(r"^h9_rx0_(\d{8}T\d{6})\.(\d{9})Z_(\d{6})\.pcapng$")


def ping(link, count: int = 20, size: int = 56, interval: str = "0.01") -> None:  # noqa: ANN001
    netns.run_in(link.h, ["ping", "-q", "-c", str(count), "-i", interval, "-s", str(size), link.cap_ip])


def tshark_count(path: Path) -> int:
    proc = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, check=True)
    return len(proc.stdout.split())


def test_naming_part_sighup_date_dirs_and_isb(link, capture_binary, tmp_path: Path) -> None:
    require_tool("tshark")
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--host", "h9",
                                                "--date-dirs"])
    w.wait_ready()
    ping(link, 10)
    line = w.wait_for(lambda d: d["type"] == "stats" and d["packets"] >= 20)
    part = Path(line["current_file"])
    assert part.name.endswith(".pcapng.part") and part.exists()
    assert part.parent.name == time.strftime("%Y-%m-%d", time.gmtime())
    assert closed_files(tmp_path) == [], "nothing is complete yet: only the .part exists"
    w.proc.send_signal(signal.SIGHUP)
    first = w.wait_for(lambda d: d["type"] == "file")
    assert first["path"] == str(part)[: -len(".part")] and Path(first["path"]).exists()
    assert not part.exists()
    ping(link, 5)
    assert w.stop() == 0, w.stderr_text()
    files = closed_files(tmp_path)
    assert len(files) == 2 and not list(tmp_path.rglob("*.part"))
    seqs = [int(NAME.match(f.name).group(3)) for f in files]
    assert seqs == [1, 2]
    for event, path in zip(w.files(), files, strict=True):
        assert Path(event["path"]) == path and event["bytes"] == path.stat().st_size
        cf = read_capture(path)
        assert event["packets"] == len(cf.packets) == tshark_count(path)
        assert event["first_ns"] == cf.packets[0].ts_ns and event["last_ns"] == cf.packets[-1].ts_ns
        # SHB/IDB say who captured what; the file ends with an ISB carrying the counters
        assert b"host h9" in cf.shb_options[4][0] and cf.idb_options[2][0] == b"rx0"
        assert cf.idb_options[9][0] == b"\x09"
        assert cf.block_types[-1] == 5
        (recv,) = struct.unpack("<Q", cf.isb_options[4][0])
        (osdrop,) = struct.unpack("<Q", cf.isb_options[7][0])
        assert recv >= len(cf.packets) and osdrop == 0
    assert w.final()["files_closed"] == 2 and w.final()["current_file"] is None


def test_rotation_by_wall_clock_seconds(link, capture_binary, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--host", "h9",
                                                "--rotate-seconds", "1"])
    w.wait_ready()
    ping(link, 130, interval="0.025")  # about 3.3 s
    assert w.stop() == 0, w.stderr_text()
    files = closed_files(tmp_path)
    assert len(files) >= 3
    for f in files[1:]:
        m = NAME.match(f.name)
        assert m and m.group(2) == "000000000", f"{f.name}: not on a whole second"
    for f in files[1:-1]:
        cf = read_capture(f)
        start = int(time.mktime(time.strptime(NAME.match(f.name).group(1), "%Y%m%dT%H%M%S"))
                    - time.timezone) * 1_000_000_000
        assert all(start <= p.ts_ns < start + 1_100_000_000 for p in cf.packets), f.name


def test_size_rotation_never_splits_packets(link, capture_binary, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--host", "h9",
                                                "--rotate-size", "20K"])
    w.wait_ready()
    ping(link, 60, size=1400)
    assert w.stop() == 0, w.stderr_text()
    files = closed_files(tmp_path)
    assert len(files) >= 5
    total = 0
    for f in files:
        cf = read_capture(f)  # parses every block: a split record would fail here
        total += len(cf.packets)
        assert f.stat().st_size <= 20 * 1024 + 1600  # one record and the ISB past the limit at most
    assert total == w.final()["packets"] and w.final()["writer_drops"] == 0


def test_snaplen_keeps_orig_len(link, capture_binary, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--snaplen", "100"])
    w.wait_ready()
    ping(link, 10, size=1000)
    ping(link, 5, size=20)
    assert w.stop() == 0
    pkts = packets_of(closed_files(tmp_path))
    assert read_capture(closed_files(tmp_path)[0]).snaplen == 100
    assert any(p.origlen == 1042 for p in pkts) and any(p.origlen < 100 for p in pkts)
    for p in pkts:
        assert len(p.data) == min(100, p.origlen)


def expected_header_len(d: bytes) -> int:
    """L2-L4 header length, computed independently of slice.c."""
    off = 12
    while d[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    etype = d[off:off + 2]
    off += 2
    if etype == b"\x08\x06":
        return off + 28
    if etype == b"\x08\x00":
        ihl = (d[off] & 15) * 4
        proto = d[off + 9]
        l4 = off + ihl
        return l4 + {6: (d[l4 + 12] >> 4) * 4, 17: 8, 1: 8}.get(proto, 0)
    if etype == b"\x86\xdd":
        nxt = d[off + 6]
        l4 = off + 40
        while nxt in (0, 43, 60):  # hop-by-hop, routing, destination options
            nxt, l4 = d[l4], l4 + (d[l4 + 1] + 1) * 8
        return l4 + {6: (d[l4 + 12] >> 4) * 4 if len(d) > l4 + 12 else 20, 17: 8, 58: 8}.get(nxt, 0)
    return off


def test_slice_header_keeps_l2_to_l4(link, capture_binary, tmp_path: Path) -> None:
    out = tmp_path / "sliced"
    full = tmp_path / "full"
    out.mkdir()
    full.mkdir()
    sliced_w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(out), "--slice", "header"])
    full_w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(full)])
    sliced_w.wait_ready()
    full_w.wait_ready()
    mixed_traffic(link)
    sliced_w.wait_quiet()
    full_w.wait_quiet()
    assert sliced_w.stop() == 0 and full_w.stop() == 0
    sliced = {(p.ts_ns, p.origlen): p.data for p in packets_of(closed_files(out))}
    whole = packets_of(closed_files(full))
    kinds = set()
    for p in whole:
        key = (p.ts_ns, p.origlen)
        if key not in sliced:
            continue
        want = min(expected_header_len(p.data), len(p.data))
        assert sliced[key] == p.data[:want], f"{p.data[12:14].hex()}: kept {len(sliced[key])}, want {want}"
        kinds.add(p.data[12:14].hex())
    assert {"0800", "0806", "86dd", "8100"} <= kinds
    assert sum(len(d) for d in sliced.values()) < sum(len(p.data) for p in whole) / 3


def test_zstd_frames_are_valid_pcapng(link, capture_binary, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--compress", "zstd:5",
                                                "--rotate-size", "64K", "--buffer-mb", "4"])
    w.wait_ready()
    mixed_traffic(link, rounds=2)
    assert w.stop() == 0, w.stderr_text()
    files = closed_files(tmp_path)
    assert len(files) >= 2 and all(f.name.endswith(".pcapng.zst") for f in files)
    total = 0
    for f in files:
        data = decompress_frames(f.read_bytes())  # every frame decompresses on its own
        cf = parse_pcapng(data)
        assert cf.block_types[:2] == [0x0A0D0D0A, 1] and cf.block_types[-1] == 5
        total += len(cf.packets)
        plain = tmp_path / (f.name[: -len(".zst")] + ".check")
        plain.write_bytes(data)
        assert tshark_count(plain) == len(cf.packets)
    assert total == w.final()["packets"]
    # the toolkit's reader (sluice-pcap, zstd aware) agrees
    check = subprocess.run([str(SLUICE_PCAP), "check", *map(str, files)], capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": valid,") == len(files), check.stdout + check.stderr


def test_replay_and_pcap_backend(link, capture_binary, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(live), "--backend", "pcap",
                                                "--format", "pcap"])
    w.wait_ready()
    mixed_traffic(link)
    w.wait_quiet()
    assert w.stop() == 0, w.stderr_text()
    src = closed_files(live)
    assert len(src) == 1
    original = read_capture(src[0]).packets
    assert len(original) > 50 and w.final()["packets"] == len(original)
    replayed = tmp_path / "replayed"
    replayed.mkdir()
    r = start_writer(capture_binary, None, ["-r", str(src[0]), "-w", str(replayed), "--rotate-size", "16K"])
    assert r.proc.wait(timeout=60) == 0, r.stderr_text()
    r.stop()
    files = closed_files(replayed)
    assert len(files) >= 2
    assert packets_of(files) == original
    assert r.final()["packets"] == len(original) and r.final()["io"] == "uring+direct"
    # the pwrite path writes the same records
    plain = tmp_path / "pwrite"
    plain.mkdir()
    p = start_writer(capture_binary, None, ["-r", str(src[0]), "-w", str(plain), "--io", "pwrite",
                                            "--format", "pcap"])
    assert p.proc.wait(timeout=60) == 0, p.stderr_text()
    p.stop()
    assert p.final()["io"] == "pwrite+direct"
    (copy,) = closed_files(plain)
    assert copy.read_bytes() == src[0].read_bytes()  # pcap in, pcap out: the very same bytes


def test_filesystem_refusing_o_direct_falls_back_to_the_page_cache(link, capture_binary, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(live)])
    w.wait_ready()
    mixed_traffic(link)
    w.wait_quiet()
    assert w.stop() == 0, w.stderr_text()
    (src,) = closed_files(live)
    original = read_capture(src).packets
    # ramfs has no direct I/O at all, and creates the file before it refuses O_DIRECT.
    with ramfs(tmp_path / "ramfs") as ram:
        r = start_writer(capture_binary, None, ["-r", str(src), "-w", str(ram)])
        assert r.proc.wait(timeout=60) == 0, r.stderr_text()
        r.stop()
        assert "refuses O_DIRECT: writing through the page cache" in r.stderr_text()
        final = r.final()
        assert final["io"].endswith("+buffered") and final["writer_drops"] == 0 and final["disk_error"] is None
        assert not [p for p in ram.iterdir() if p.name.endswith(".part")]
        assert packets_of(closed_files(ram)) == original


def test_hw_timestamps_fall_back_to_sw_on_veth(link, capture_binary, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--timestamps", "hw"])
    w.wait_ready()
    started = time.time_ns()
    ping(link, 5)
    assert w.stop() == 0
    stopped = time.time_ns()
    assert w.final()["ts_source"] == "sw"
    assert "no hardware timestamps" in w.stderr_text()
    cf = read_capture(closed_files(tmp_path)[0])
    assert b"software timestamps" in cf.idb_options[3][0]
    pings = [p for p in cf.packets if p.data[12:14] == b"\x08\x00"]
    assert len(pings) >= 10 and all(started < p.ts_ns < stopped for p in pings)


def test_sigterm_under_a_flood_stops_promptly_with_whole_files(link, capture_binary, tmp_path: Path) -> None:
    require_tool("trafgen")
    out = tmp_path / "out"
    out.mkdir()
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(out), "--rotate-size", "4M"])
    w.wait_ready()
    with Trafgen(link.h, link.tx, udp_conf(tmp_path, 800), count=10_000_000, gap_us=10):
        w.wait_for(lambda d: d["type"] == "stats" and d["packets"] > 20000, timeout=20)
        t0 = time.monotonic()
        assert w.stop(signal.SIGTERM, timeout=20) == 0, w.stderr_text()
        assert time.monotonic() - t0 < 5, "the drain must not wait for the traffic to pause"
    final = w.final()
    files = closed_files(out)
    assert not list(out.rglob("*.part"))
    assert sum(len(read_capture(f).packets) for f in files) == final["packets"] - final["writer_drops"]


def test_quiet_link_reaches_disk_within_seconds(link, capture_binary, tmp_path: Path) -> None:
    """Blocks are not full on a quiet link: data older than a second is written anyway (the
    unaligned tail page is rewritten by the next O_DIRECT write) and the file stays exact."""
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--format", "pcap"])
    w.wait_ready()
    written = []
    for _ in range(4):
        ping(link, 3, size=333, interval="0.05")
        time.sleep(1.6)  # deliberate: data older than a second must reach the disk without more traffic
        written.append(w.lines[-1]["bytes_written"])
    assert all(b > a for a, b in zip(written, written[1:], strict=False)), written
    last = w.lines[-1]
    # what the writer reports as written is on disk, whole records, while the file is still open
    on_disk = parse_pcap(Path(last["current_file"]).read_bytes()[: last["bytes_written"]])
    assert sum(1 for p in on_disk.packets if p.origlen == 375) >= 18
    assert w.stop() == 0
    (f,) = closed_files(tmp_path)
    echoes = [p for p in read_capture(f).packets if p.origlen == 375]
    assert len(echoes) == 24  # 12 requests, 12 replies
