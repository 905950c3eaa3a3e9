"""sluice-capture on a box as it meets the world (issue 11): defaults sized from memory, an
interface that disappears, a clock step, a filter that takes seconds to compile, SIGTERM during
start-up, crafted .part names, a .part a live writer holds, refused sizes. Real writers on real
veth pairs; the clock step is one process's own (an LD_PRELOAD library), never the machine's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab import netns
from tests.capture.capfiles import read_capture
from tests.capture.conftest import NATIVE, TEST_MEMORY, closed_files, send_frames, start_writer, vlan_frames

pytestmark = [pytest.mark.root, pytest.mark.netns]

CLOCKSTEP = NATIVE / "build" / "test-lib" / "libclockstep.so"
MIB = 1 << 20


def contract(binary: Path) -> dict:
    return json.loads(subprocess.run([str(binary), "--print-contract"], capture_output=True, text=True,
                                     check=True).stdout)


def big_filter(hosts: int) -> str:
    """A filter libpcap's optimiser takes seconds over (quadratic in the terms)."""
    return " or ".join(f"host 198.51.{i // 250}.{i % 250 + 1}" for i in range(hosts))


def test_defaults_size_buffers_from_memory_and_say_the_burst_they_hold(capture_binary, link, tmp_path: Path) -> None:
    auto = contract(capture_binary)["flags"]
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    want_buffer = min(max(ram // 16 // MIB, 64), 4096) // 4 * 4
    want_ring = min(max(ram // 64 // MIB, 64), 256)
    assert auto["buffer_mb"]["auto"]["here"] == want_buffer and auto["ring_mb"]["auto"]["here_one_worker"] == want_ring
    # no memory flags at all: what an operator runs
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--ring-mb", "auto",
                                                 "--buffer-mb", "auto"])
    try:
        st = w.wait_for(lambda d: d["type"] == "stats", timeout=30)
    finally:
        assert w.stop() == 0, w.stderr_text()
    assert st["buffer_bytes"] == want_buffer * MIB > 64 * MIB  # more than the old fixed 64 MiB on this box
    assert st["ring_bytes"] == want_ring * MIB
    assert st["link_bps"] == 10_000_000_000  # a veth says 10 Gbit/s
    assert st["burst_seconds"] == pytest.approx((st["buffer_bytes"] + st["ring_bytes"]) * 8 / st["link_bps"], abs=1e-3)


def mappings(pid: int) -> list[dict[str, str]]:
    """/proc/PID/smaps as one dict a mapping: "range", "size_kb" and its fields (THPeligible, ...)."""
    out: list[dict[str, str]] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            out.append({"range": head[0]})
        elif len(head) >= 2:
            out[-1][head[0].rstrip(":")] = head[1]
    return out


def test_staging_buffers_ask_for_huge_pages(capture_binary, link, tmp_path: Path) -> None:
    # Whether the kernel has huge pages free depends on the machine; that the writer asks for them
    # for its first 64 MiB (THPeligible, even where it then falls back to small pages) does not.
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("transparent huge pages are off on this machine")
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path)])  # buffers 64 MiB
    try:
        w.wait_ready()
        staging = [m for m in mappings(w.pid) if m.get("Size") == str(64 * 1024)]
        assert len(staging) == 1, [m["range"] for m in mappings(w.pid)]
        assert staging[0]["THPeligible"] == "1"
        assert staging[0]["Locked"] == str(64 * 1024)  # faulted in and locked, huge pages or not
    finally:
        assert w.stop() == 0, w.stderr_text()


def test_rings_and_buffers_beyond_memory_are_refused(capture_binary, tmp_path: Path) -> None:
    ram_mib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // MIB
    ring = min(65536, ram_mib // 2 // 2 + 1)  # two workers of this ring: more than half the RAM
    proc = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), "--workers", "2",
                           "--ring-mb", str(ring), "--buffer-mb", "64"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "more than half of this machine's" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_writer_whose_interface_disappears_exits_with_one_line(capture_binary, link, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path)])
    w.wait_ready()
    netns.ip("-n", link.h, "link", "del", link.tx)  # the veth pair goes, rx0 with it
    try:
        rc = w.wait(timeout=10)
    except subprocess.TimeoutExpired:
        cpu = sum(int(x) for x in Path(f"/proc/{w.proc.pid}/stat").read_text().split()[13:15])
        w.proc.kill()
        raise AssertionError(f"the writer kept running after its interface went ({cpu} ticks of CPU)") from None
    err = w.stderr_text().splitlines()
    assert rc == 1, err
    assert len(err) == 1 and "interface rx0 disappeared" in err[0], err
    assert w.final()["type"] == "final"
    assert not list(tmp_path.rglob("*.part"))  # the file it had open is closed and whole
    for f in closed_files(tmp_path):
        read_capture(f)


def test_a_backward_clock_step_does_not_delay_the_stats(capture_binary, link, tmp_path: Path) -> None:
    argv = netns.exec_argv(link.cap, ["env", f"LD_PRELOAD={CLOCKSTEP}", "SLUICE_TEST_REALTIME_STEP=1.0:-3600",
                                      str(capture_binary), "--stats-interval", "0.1", "--ring-mb", "16",
                                      "--buffer-mb", "64", "-i", link.rx, "-w", str(tmp_path)])
    from tests.capture.conftest import Writer
    w = Writer(argv)
    try:
        # the step shows in the lines' own real-time stamps: an hour back
        w.wait_for(lambda d: d["type"] == "stats" and d["ts"] < time.time() - 3000, timeout=10)
        stepped = [d for d in w.lines if d["type"] == "stats" and d["ts"] < time.time() - 3000]
        began = time.monotonic()
        while len(stepped) < 10 and time.monotonic() - began < 5:
            time.sleep(0.1)
            stepped = [d for d in w.lines if d["type"] == "stats" and d["ts"] < time.time() - 3000]
    finally:
        assert w.stop() == 0, w.stderr_text()
    assert len(stepped) >= 10, f"{len(stepped)} stats lines after the step"


def test_a_filter_too_slow_to_compile_is_refused(capture_binary, link, tmp_path: Path) -> None:
    began = time.monotonic()
    proc = subprocess.run(netns.exec_argv(link.cap, [str(capture_binary), "-i", link.rx, "-w", str(tmp_path),
                                                     *TEST_MEMORY, "--filter-timeout", "1",
                                                     "--filter", big_filter(1200)]),
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - began
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "filter takes more than 1 s to compile" in proc.stderr
    # compiling it takes a minute and more: refused long before that, even on a loaded machine
    assert took < 30, f"refused after {took:.1f}s"
    assert closed_files(tmp_path) == []


def test_sigterm_during_start_up_stops_at_once(capture_binary, link, tmp_path: Path) -> None:
    # the defaults: the buffers of a few GiB to fault in, then a filter that takes a minute
    proc = subprocess.Popen(netns.exec_argv(link.cap, [str(capture_binary), "-i", link.rx, "-w", str(tmp_path),
                                                       "--filter-timeout", "300", "--filter", big_filter(1200)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # deliberate: a moment into its start-up (seconds of work), which shows nothing
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - began
    assert proc.returncode == 0 and err == "" and out == "", (proc.returncode, err)
    assert took < 10, f"stopped {took:.1f}s after SIGTERM"


def test_recovery_lines_escape_crafted_names(capture_binary, link, tmp_path: Path) -> None:
    # a real capture file to cut: the first writer run
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--host", "box"])
    w.wait_ready()
    send_frames(link.h, link.tx, vlan_frames(10))
    w.wait_for(lambda d: d["type"] == "stats" and d["packets"] >= 10)
    assert w.stop() == 0
    (real,) = closed_files(tmp_path)
    crafted = (os.fsencode(tmp_path) + b'/box_rx0_x","packets":987000000}\n'
               b'{"type":"stats","packets":987000000,"v":1\xff.pcapng.part')
    with open(crafted, "wb") as f:
        f.write(real.read_bytes()[:-100])  # a crash: the end is missing
    proc = subprocess.run([str(capture_binary), "--recover", str(tmp_path)], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, lines  # the newline in the name did not start a second line
    rec = json.loads(lines[0])
    assert rec["type"] == "recovered" and "packets" not in rec
    assert os.fsencode(rec["part"]) == crafted
    assert os.path.exists(os.fsencode(rec["path"])) and rec["cut_bytes"] > 0


def test_recovery_leaves_a_part_that_a_live_writer_holds(capture_binary, link, tmp_path: Path) -> None:
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--host", "box"])
    try:
        st = w.wait_for(lambda d: d["type"] == "stats" and d["current_file"])
        part = Path(st["current_file"])
        proc = subprocess.run([str(capture_binary), "--recover", str(tmp_path)], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0 and proc.stdout == "", proc
        assert "a running writer holds it, left alone" in proc.stderr
        assert part.exists()
        send_frames(link.h, link.tx, vlan_frames(5))
        w.wait_for(lambda d: d["type"] == "stats" and d["packets"] >= 5)
    finally:
        assert w.stop() == 0
    (f,) = closed_files(tmp_path)
    assert len(read_capture(f).packets) >= 5


def test_workers_and_the_disk_writer_run_on_the_cpus_given(capture_binary, link, tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    a, b = cpus[-1], cpus[0]
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--workers", "2",
                                                 "--cpus", f"{a},{b}", "--writer-cpu", str(b)])
    try:
        w.wait_ready()
        # the pid of sluice-capture itself (ip netns exec execs it)
        seen = {}
        for task in Path(f"/proc/{w.proc.pid}/task").iterdir():
            name = (task / "comm").read_text().strip()
            allowed = next(line.split(":", 1)[1].strip() for line in (task / "status").read_text().splitlines()
                           if line.startswith("Cpus_allowed_list:"))
            seen[name] = allowed
    finally:
        assert w.stop() == 0
    assert seen["capture-0"] == str(a) and seen["capture-1"] == str(b) and seen["disk-writer"] == str(b), seen


def test_version_snaplen_and_a_trailing_filter_as_tcpdump(capture_binary, link, tmp_path: Path) -> None:
    v = subprocess.run([str(capture_binary), "--version"], capture_output=True, text=True, check=True)
    assert v.stdout.startswith("sluice-capture ") and v.stderr == ""
    w = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(tmp_path), "-s", "100", "vlan", "and", "udp"])
    w.wait_ready()
    send_frames(link.h, link.tx, vlan_frames(6))
    netns.run_in(link.h, ["ping", "-c", "3", "-i", "0.01", link.cap_ip])  # not matched
    w.wait_for(lambda d: d["type"] == "stats" and d["packets"] >= 6)
    assert w.stop() == 0
    (f,) = closed_files(tmp_path)
    cf = read_capture(f)
    assert len(cf.packets) == 6 and all(len(p.data) <= 100 < p.origlen or len(p.data) == p.origlen for p in cf.packets)
    assert any(p.origlen > 100 for p in cf.packets)
    assert all(p.data[12:14] == b"\x81\x00" for p in cf.packets)
