"""sluice-capture against tcpdump and netsniff-ng on the same veth, the same trafgen load, the same
disk; and the writer alone (`-r` from /dev/shm) against `dd bs=4M oflag=direct`.

Sluice runs twice: with its defaults (rings and buffers sized from the machine's memory, what an
operator gets) and tuned (ring 128 MiB, buffers 1 GiB). With --pinning it also runs without
taskset, unpinned and with `--cpus 1` (its capture worker on CPU 1, the rest where the scheduler
puts it), to show what the writer's own pinning changes (loss, CPU per packet).

trafgen runs pinned to CPU 0 on one end of a veth pair, each capture program pinned to CPU 1 on
the other end, writing to the real disk (/var/tmp, not tmpfs). A program's loss is the packets
that reached the capture interface (its rx counter) but are not in its files; CPU is the capture
process's user+sys time (all threads) from the start of the load until 2 s after its end (its
start-up, e.g. allocating rings, is not counted), counted in clock ticks (10 ms a thread); beside it
the run time of its busiest thread over the same span, in ns from /proc/PID/task/TID/schedstat (for
Sluice the capture thread: the figure to compare two builds by, --capture-bin); memory its peak
resident set. The kernel's page-cache flushing done for tcpdump and netsniff-ng is not in their
CPU figures (it runs in kernel threads); Sluice writes with O_DIRECT, so its disk work is in its
own figure.

With --anonymize it also runs Sluice with its defaults plus `--anonymize` (Crypto-PAn of every
address in the writer, a fresh random key) on both loads, beside the same defaults without it:
the difference in CPU per packet is what anonymising at capture costs. trafgen's frames all
carry the same two addresses, so Crypto-PAn's cache answers almost every lookup: this is the cost
of the frame walk and the copy, a lower bound for traffic with many distinct addresses.

With --capture-bin LABEL=PATH (repeatable) it also runs another sluice-capture binary, e.g. one
built from an older commit, on the same loads: one row LABEL-defaults (and LABEL-tuned when
sluice-tuned is among --tools) beside the current build's. It gets only flags every version since
e07160d understands, the same as the current build's row, except that "defaults" are made
explicit: the current build's automatic ring and buffer sizes (from its --print-contract) as
--ring-mb and --buffer-mb, since an older binary's own defaults differ (e07160d: 64 + 64 MiB), and
a comparison of code wants the same memory. A binary whose stats line has no ring_bytes and
buffer_bytes (e07160d's has not) shows the sizes it was given. With --rounds N every load runs N
times, the order of the programs reversed every other round (A B, B A, A B, ...) so that the
machine's load falls on each alike; each round prints the load average before and after it, and
the summary gives each program's median CPU time over the rounds.

    python -m bench.bench_capture [--quick] [--dir /var/tmp/sluice-bench] [--anonymize]
        [--capture-bin LABEL=PATH]... [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.lab import netns
from appliance.lab.harness import trafgen
from appliance.lab.harness.netsniff import Netsniff
from appliance.lab.harness.process import Process
from appliance.lab.harness.tcpdump import PEER_OPTIONS, Tcpdump
from appliance.lab.harness.trafgen import Trafgen
from appliance.lab.harness.writer import Writer
from bench.binaries import label_and_path, positive_int

REPO = Path(__file__).resolve().parent.parent
SLUICE = REPO / "native" / "build" / "sluice-capture"
SLUICE_COMMON = ["--rotate-size", "1G", "--stats-interval", "1"]
# Tuned: ring 128 MiB + staging 1 GiB (absorbs seconds of a disk slower than the wire).
SLUICE_FLAGS = ["--ring-mb", "128", "--buffer-mb", "1024", *SLUICE_COMMON]
# The variants of Sluice: its flags, and whether the whole process is pinned with taskset -c 1.
SLUICE_VARIANTS = {
    "sluice-defaults": (SLUICE_COMMON, True),
    "sluice-tuned": (SLUICE_FLAGS, True),
    "sluice-unpinned": (SLUICE_COMMON, False),
    "sluice-cpus": ([*SLUICE_COMMON, "--cpus", "1"], False),
}
# The variants another binary (--capture-bin) can run: their flags exist in every version.
OTHER_BINARY_VARIANTS = ("sluice-defaults", "sluice-tuned")


@dataclass
class Result:
    tool: str
    frames: int
    size: int
    arrived: int
    in_files: int
    cpu_s: float
    maxrss_mb: float
    seconds: float
    memory: str = ""
    busiest_thread_s: float = 0.0

    @property
    def lost(self) -> int:
        return max(0, self.arrived - self.in_files)

    @property
    def lost_percent(self) -> float:
        return 100 * self.lost / max(1, self.arrived)

    @property
    def cpu_ns_per_packet(self) -> float:
        return self.cpu_s * 1e9 / max(1, self.in_files)


def cpu_seconds(pid: int) -> float:
    """user+sys of a process, all its threads (io_uring workers included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_run_ns(pid: int) -> dict[str, int]:
    """Each live thread's run time in ns (/proc/PID/task/TID/schedstat): finer than cpu_seconds'
    clock ticks, so that an A/B of two builds shows the capture thread's own difference."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[task.name] = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return times


def busiest_thread_seconds(before: dict[str, int], after: dict[str, int]) -> float:
    return max((ns - before.get(tid, 0) for tid, ns in after.items()), default=0) / 1e9


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def count_packets(path: Path) -> int:
    """Records in a pcap or pcapng file (a plain walk over the headers)."""
    n = 0
    with path.open("rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        off = 0
        while off + 8 <= len(data):
            btype, blen = struct.unpack_from("<II", data, off)
            if blen < 12:
                break
            n += btype == 6
            off += blen
        return n
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        off += 16 + caplen
        n += 1
    return n


@dataclass(frozen=True)
class OtherBinary:
    """A sluice-capture binary other than the current build's (--capture-bin), run with `flags`."""

    path: Path
    flags: list[str]


# Rows run by another sluice-capture binary, by their tool name (LABEL-defaults, LABEL-tuned).
OTHER_BINARIES: dict[str, OtherBinary] = {}


def automatic_sizes_mb() -> tuple[int, int]:
    """The current build's automatic ring (one worker) and buffer sizes here, in MiB."""
    out = subprocess.run([str(SLUICE), "--print-contract"], check=True, capture_output=True, text=True).stdout
    flags = json.loads(out)["flags"]
    return int(flags["ring_mb"]["auto"]["here_one_worker"]), int(flags["buffer_mb"]["auto"]["here"])


def add_other_binaries(binaries: list[tuple[str, Path]], tools: list[str]) -> list[str]:
    """Registers each --capture-bin binary for the sluice variants among tools (sluice-defaults when
    none is): the current build's flags, its automatic sizes made explicit. The new rows' names."""
    variants = [t for t in tools if t in OTHER_BINARY_VARIANTS] or ["sluice-defaults"]
    ring_mb, buffer_mb = automatic_sizes_mb()
    explicit = {"sluice-defaults": ["--ring-mb", str(ring_mb), "--buffer-mb", str(buffer_mb), *SLUICE_COMMON],
                "sluice-tuned": SLUICE_FLAGS}
    names = []
    for label, path in binaries:
        for variant in variants:
            name = label + variant.removeprefix("sluice")
            OTHER_BINARIES[name] = OtherBinary(path, explicit[variant])
            names.append(name)
    return names


def flag_mib(flags: list[str], flag: str) -> int:
    return int(flags[flags.index(flag) + 1])


def capture_process(ns: str, tool: str, out: Path) -> Process:
    """The capture program as its harness (not started): each is ready on its own event (sluice-capture's
    first stats line: its ring is bound; tcpdump's "listening on"; netsniff-ng's bound socket)."""
    pin = ["taskset", "-c", "1"]
    if tool in SLUICE_VARIANTS:
        flags, pinned = SLUICE_VARIANTS[tool]
        return Writer([*(pin if pinned else []), str(SLUICE), "-i", "rx0", "-w", str(out), *flags], ns, start=False)
    if tool in OTHER_BINARIES:
        other = OTHER_BINARIES[tool]
        return Writer([*pin, str(other.path), "-i", "rx0", "-w", str(out), *other.flags], ns, start=False)
    if tool == "tcpdump":  # the command PEERS.md compares with
        return Tcpdump(ns, "rx0", out / "dump.pcap", PEER_OPTIONS, prefix=pin)
    return Netsniff(ns, "rx0", out / "sniff.pcap", prefix=pin)


def run_one(ns: str, tool: str, frames: int, size: int, base: Path, conf: Path) -> Result:
    out = base / tool
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    proc = capture_process(ns, tool, out)
    memory = ""
    with proc:
        if isinstance(proc, Writer):
            first = proc.lines[0]  # the first stats line: the ring is bound
            if "ring_bytes" in first:
                memory = f"ring {first['ring_bytes'] >> 20} MiB + buffers {first['buffer_bytes'] >> 20} MiB"
            else:  # a writer older than these fields (--capture-bin): the sizes it was given
                flags = OTHER_BINARIES[tool].flags
                memory = (f"ring {flag_mib(flags, '--ring-mb')} MiB + buffers {flag_mib(flags, '--buffer-mb')} MiB"
                          " (its flags)")
        before = netns.link_stats(ns, "rx0")["rx_packets"]
        cpu_before = cpu_seconds(proc.pid)
        threads_before = thread_run_ns(proc.pid)
        start = time.monotonic()
        trafgen.run(ns, "tx0", conf, frames, cpu=0)
        arrived = netns.link_stats(ns, "rx0")["rx_packets"] - before
        time.sleep(2.0)  # let each program empty its ring and buffers (the same time for each: it is measured)
        cpu = cpu_seconds(proc.pid) - cpu_before
        busiest = busiest_thread_seconds(threads_before, thread_run_ns(proc.pid))
        peak_rss_mb = peak_rss_kb(proc.pid) / 1024
        proc.stop(signal.SIGINT, timeout=120)
    seconds = time.monotonic() - start
    in_files = sum(count_packets(p) for p in sorted(out.iterdir()) if p.is_file())
    result = Result(tool, frames, size, arrived, in_files, cpu, peak_rss_mb, seconds, memory, busiest)
    shutil.rmtree(out, ignore_errors=True)
    return result


def make_namespace() -> str:
    ns = f"sluice-bench-{os.getpid()}"
    netns.add_namespace(ns)
    netns.ip("-n", ns, "link", "add", "tx0", "type", "veth", "peer", "name", "rx0")
    for ifname in ("tx0", "rx0"):
        netns.ip("-n", ns, "link", "set", ifname, "up")
        netns.run_in(ns, ["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"])
        netns.run_in(ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"])
    return ns


def write_test_file(path: Path, size_bytes: int) -> None:
    """A pcapng of 1442-byte frames, as the capture benchmark's traffic, in /dev/shm."""
    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb_opts = struct.pack("<HHBxxx", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_len = 20 + len(idb_opts)
    idb = struct.pack("<IIHHI", 1, idb_len, 1, 0, 262144) + idb_opts + struct.pack("<I", idb_len)
    frame = bytes(range(256)) * 5 + bytes(1442 - 1280)
    epb_len = 32 + ((len(frame) + 3) & ~3)
    pad = bytes(epb_len - 32 - len(frame))
    chunk = bytearray()
    ts = time.time_ns()
    for i in range(1000):
        t = ts + i * 1000
        chunk += struct.pack("<IIIIIII", 6, epb_len, 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame))
        chunk += frame + pad + struct.pack("<I", epb_len)
    with path.open("wb") as f:
        f.write(shb + idb)
        for _ in range(max(1, size_bytes // len(chunk))):
            f.write(chunk)


def writer_only(base: Path, size_bytes: int, others: list[tuple[str, Path]]) -> list[tuple[str, float, float]]:
    """MB/s of `sluice-capture -r` (and of each other binary's, --capture-bin, in the reverse order in the
    second round) and of dd, two rounds."""
    src = Path("/dev/shm/sluice-bench-input.pcapng")
    out = base / "writer"
    rows = []
    writers = [("sluice -r", SLUICE), *((f"{label} -r", path) for label, path in others)]
    try:
        write_test_file(src, size_bytes)
        size = src.stat().st_size
        for round_no in range(2):
            # the first writer of a round meets what the capture runs left (page cache, writeback):
            # another binary (--capture-bin) takes that place every other round
            for name, binary in writers if round_no % 2 == 0 else writers[::-1]:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                t0 = time.monotonic()
                argv = [str(binary), "-r", str(src), "-w", str(out), "--rotate-size", "0", "--buffer-mb", "256"]
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                rows.append((name, size / (time.monotonic() - t0) / 1e6, 0.0))
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            t0 = time.monotonic()
            subprocess.run(["dd", f"if={src}", f"of={out / 'dd.out'}", "bs=4M", "oflag=direct"], check=True,
                           capture_output=True)
            dd_s = time.monotonic() - t0
            rows.append(("dd bs=4M oflag=direct", size / dd_s / 1e6, 0.0))
    finally:
        src.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def sustained(ns: str, base: Path, seconds: int, gap_us: int) -> None:
    """A long rate-limited flood: Sluice's losses and its resident memory second by second."""
    out = base / "sustained"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    conf = trafgen.udp_conf(base, 1442)
    frames = int(seconds * 1_000_000 / gap_us)
    rss: list[int] = []
    last: dict = {}
    proc = capture_process(ns, "sluice-tuned", out)
    assert isinstance(proc, Writer)
    with proc:
        before = netns.link_stats(ns, "rx0")["rx_packets"]
        with Trafgen(ns, "tx0", conf, count=frames, gap_us=gap_us, cpu=0) as gen:
            seen = 0
            while gen.running():  # one stats line a second; delete closed files as retention would
                proc.wait_for(lambda d: d["type"] == "stats", timeout=30, since=seen)
                for rec in proc.lines[seen:]:
                    if rec["type"] == "file":
                        Path(rec["path"]).unlink(missing_ok=True)
                    elif rec["type"] == "stats":
                        last = rec
                        rss.append(current_rss_kb(proc.pid))
                seen = len(proc.lines)
        time.sleep(2.0)  # the same drain time as run_one's: it is part of what is measured
        proc.stop(signal.SIGINT, timeout=60)
        last = next((rec for rec in proc.lines if rec["type"] == "final"), last)
    arrived = netns.link_stats(ns, "rx0")["rx_packets"] - before
    shutil.rmtree(out, ignore_errors=True)
    steady = rss[len(rss) // 4:] or rss
    print(f"sustained {seconds} s at {1442 * 8 / gap_us / 1000:.2f} Gbit/s ({arrived:,d} frames of 1442 B): "
          f"kernel_drops {last.get('kernel_drops')} writer_drops {last.get('writer_drops')} "
          f"packets {last.get('packets'):,d}; RSS MiB min {min(steady) / 1024:.0f} max {max(steady) / 1024:.0f} "
          f"(after the first quarter)")


def current_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the frames, a smaller writer test")
    ap.add_argument("--dir", default="/var/tmp/sluice-bench", help="output on the real disk (not tmpfs)")
    ap.add_argument("--tools", default="sluice-defaults,sluice-tuned,tcpdump,netsniff-ng")
    ap.add_argument("--pinning", action="store_true",
                    help="also sluice unpinned and with --cpus 1 (no taskset), on the 1442 B load")
    ap.add_argument("--anonymize", action="store_true",
                    help="also sluice-defaults with --anonymize (a random key), on every load")
    ap.add_argument("--capture-bin", action="append", default=[], metavar="LABEL=PATH",
                    type=label_and_path,
                    help="also this sluice-capture binary (e.g. an older build): rows LABEL-defaults, LABEL-tuned")
    ap.add_argument("--rounds", type=positive_int, default=1, metavar="N",
                    help="run every load N times, the order reversed every other round; medians in the summary")
    ap.add_argument("--sustained", type=int, default=60, help="seconds of the sustained flood (0 = skip)")
    ap.add_argument("--sustained-gap-us", type=int, default=8, help="gap between its frames (8 us = 1.4 Gbit/s)")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else [])
    if os.geteuid() != 0:
        print("bench_capture: needs root (network namespaces)", file=sys.stderr)
        return
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    div = 5 if args.quick else 1
    loads = [(1_500_000 // div, 1442), (3_000_000 // div, 76)]
    tools = args.tools.split(",")
    if args.anonymize:
        key = base / "bench-cryptopan.key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        SLUICE_VARIANTS["sluice-anonymized"] = ([*SLUICE_COMMON, "--anonymize", str(key)], True)
    others = add_other_binaries(args.capture_bin, tools) if args.capture_bin else []
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start "
          "(shared machine: other work may be running)")
    ns = make_namespace()
    results = []
    try:
        for frames, size in loads:
            conf = trafgen.udp_conf(base, size)
            extra = ["sluice-unpinned", "sluice-cpus"] if args.pinning and size == 1442 else []
            extra += ["sluice-anonymized"] if args.anonymize else []
            for round_no in range(args.rounds):
                order = [*tools, *extra, *others]
                if round_no % 2:  # A B, B A, A B, ...: a trend in the machine's load falls on each alike
                    order.reverse()
                load_before = os.getloadavg()[0]
                for tool in order:
                    results.append(run_one(ns, tool, frames, size, base, conf))
                    r = results[-1]
                    print(f"  {tool:16s} {frames:>9,d} x {size:4d} B: arrived {r.arrived:>9,d}"
                          f"  in files {r.in_files:>9,d}  lost {r.lost:>9,d} ({r.lost_percent:5.1f} %)"
                          f"  cpu {r.cpu_s:6.2f} s ({r.cpu_ns_per_packet:5.0f} ns/pkt)"
                          f"  busiest thread {r.busiest_thread_s:6.3f} s"
                          f"  rss {r.maxrss_mb:7.1f} MiB"
                          f"  {r.memory}", flush=True)
                if args.rounds > 1:
                    print(f"  round {round_no + 1} of {args.rounds}: load average {load_before:.2f} before, "
                          f"{os.getloadavg()[0]:.2f} after", flush=True)
        if args.sustained:
            sustained(ns, base, args.sustained // div, args.sustained_gap_us)
    finally:
        netns.kill_all_in(ns)
        netns.delete_namespace(ns)
    print()
    for frames, size in loads:
        load_results = [r for r in results if r.frames == frames and r.size == size]
        if args.rounds == 1:
            for r in load_results:
                print(f"{frames:>9,d} x {size:4d} B | {r.tool:16s} | lost {r.lost_percent:5.1f} % "
                      f"| cpu {r.cpu_s:5.2f} s ({r.cpu_ns_per_packet:5.0f} ns/pkt)")
            continue
        for tool in dict.fromkeys(r.tool for r in load_results):
            runs = [r for r in load_results if r.tool == tool]
            cpu = statistics.median(r.cpu_s for r in runs)
            ns_pkt = statistics.median(r.cpu_ns_per_packet for r in runs)
            busiest = statistics.median(r.busiest_thread_s for r in runs)
            print(f"{frames:>9,d} x {size:4d} B | {tool:16s} | lost at most {max(r.lost_percent for r in runs):5.1f} % "
                  f"| cpu median {cpu:5.2f} s ({ns_pkt:5.0f} ns/pkt) of {len(runs)}: "
                  + " ".join(f"{r.cpu_s:.2f}" for r in runs)
                  + f" | busiest thread median {busiest:.3f} s: " + " ".join(f"{r.busiest_thread_s:.3f}" for r in runs))
    print()
    size_bytes = (512 if args.quick else 2048) << 20
    rows = writer_only(base, size_bytes, args.capture_bin)
    print(f"writer alone, {size_bytes >> 20} MiB from /dev/shm to {base} (two rounds):")
    for name, mbps, _ in rows:
        print(f"  {name:24s} {mbps:8.0f} MB/s")
    sl = [m for n, m, _ in rows if n == "sluice -r"]
    dd = [m for n, m, _ in rows if n.startswith("dd")]
    print(f"  sluice / dd: {sum(sl) / sum(dd) * 100:.0f} %")


if __name__ == "__main__":
    main()
