"""sluice-pcap against its peers on the same inputs, side by side from one run.

Inputs are generated from real lab traffic: a lab is brought up, its SPAN port captured while
ping, HTTP and DNS run, and those packets serve as templates for a larger file whose IPv4
addresses are spread over the benchmarking range 198.18.0.0/15 (about 100k distinct addresses,
flows of 20 packets). The file never leaves this machine. From it come: a SPAN file with every
packet twice (dedup), four interleaved parts (merge), a damaged copy (repair).

With --pcap-bin LABEL=PATH (repeatable) another sluice-pcap binary, e.g. one built from an older
commit, runs the same jobs with the same arguments (every version since e07160d takes them), its
runs alternating with the current build's (current, other, other, current, ...) so that the
machine's load falls on each alike. Each job gets one more row: LABEL in the peer column, and as
"speedup" LABEL's time over the current build's (two decimals; above 1, the current build is
faster). --jobs picks jobs by their first word (dedup, merge, repair, flows, anonymize).

    python -m bench bench_pcap            (BENCH_PACKETS=500000 by default)
    python -m bench.bench_pcap [--jobs merge,...] [--pcap-bin LABEL=PATH]...
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.binaries import label_and_path

REPO = Path(__file__).resolve().parent.parent
SLUICE_PCAP = REPO / "native" / "build" / "sluice-pcap"
KEY_HEX = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202"
BENCH_NET = 0xC6120000  # 198.18.0.0/15 (RFC 2544)


def capture_templates(out: Path) -> None:
    """A few hundred real packets from the lab's SPAN port."""
    from appliance.lab import traffic
    from appliance.lab.commands import lab_down, lab_up
    from appliance.lab.harness.tcpdump import Tcpdump

    lab_id = "bp" + os.urandom(4).hex()
    lab = lab_up(lab_id)
    try:
        with Tcpdump(lab.capture_ns, lab.capture_if, out, ("-n", "-U", "--time-stamp-precision=nano")):
            traffic.ping(lab, "h1", "h2", 20, interval=0.01)
            for _ in range(3):
                traffic.http_get(lab, "h2", "h1")
            traffic.dns_query(lab, "h1")
            time.sleep(0.5)  # not immediate mode: the last packets' time to reach the file
    finally:
        lab_down(lab_id)


def read_templates(path: Path) -> list[bytes]:
    data = path.read_bytes()
    off, frames = 24, []
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16: off + 16 + caplen]
        if frame[12:14] == b"\x08\x00" and len(frame) >= 34:
            frames.append(frame)
        off += 16 + caplen
    return frames


def generate(templates: list[bytes], n: int, copies: bool) -> bytes:
    """n packets (2n with copies 5 µs later), 2 µs apart, addresses per flow of 20 packets."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    rnd = random.Random(7)
    ts = 1_700_000_000 * 10**9
    src = dst = BENCH_NET
    for i in range(n):
        t = templates[i % len(templates)]
        if i % 20 == 0:
            flow = i // 20
            src = BENCH_NET + (flow * 7919) % 131072
            dst = BENCH_NET + (flow * 104729 + rnd.randrange(1 << 16)) % 131072
        frame = t[:26] + struct.pack("!II", src, dst) + t[34:]
        rec = struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)) + frame
        out.append(rec)
        if copies:
            tc = ts + 5000
            out.append(struct.pack("<IIII", tc // 10**9, tc % 10**9, len(frame), len(frame)) + frame)
        ts += 2000
    return b"".join(out)


def split(data: bytes, parts: int) -> list[bytes]:
    header, off, outs, k = data[:24], 24, [[data[:24]] for _ in range(parts)], 0
    del header
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        outs[k % parts].append(data[off: off + 16 + caplen])
        off += 16 + caplen
        k += 1
    return [b"".join(o) for o in outs]


def damage(data: bytes) -> bytes:
    """Garbage between records every ~20000 records, one broken length, and a cut-off end."""
    rnd = random.Random(11)
    pieces, off, k = [data[:24]], 24, 0
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        rec = bytearray(data[off: off + 16 + caplen])
        if k % 20000 == 10000:
            pieces.append(rnd.randbytes(100))
        if k % 50000 == 25000:
            rec[8:12] = struct.pack("<I", 0x7FFFFFF0)
        pieces.append(bytes(rec))
        off += 16 + caplen
        k += 1
    return b"".join(pieces)[:-33]


def timed(argv: list, stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best_of(runs: int, argv: list, cleanup: list[Path]) -> tuple[float, float]:
    """The fastest of `runs` runs (wall, and that run's CPU), each on a quiet page cache."""
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        clean(cleanup)
        r = timed(argv)
        best = min(best, r)
    return best


def clean(paths: list[Path]) -> None:
    """Each output of an earlier run gone (a directory left empty), and what it left dirty written
    back, so that no run pays for another's output."""
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
            p.mkdir()
        elif p.exists():
            p.unlink()
    os.sync()


def best_alternating(runs: int, argvs: list[list], cleanup: list[Path]) -> list[tuple[float, float]]:
    """The fastest of `runs` runs of each argv (wall, and that run's CPU), the argvs taking turns
    (A B, B A, A B, ...) so that a change in the machine's load falls on each alike."""
    best = [(float("inf"), float("inf"))] * len(argvs)
    for run in range(runs):
        order = list(range(len(argvs)))
        if run % 2:
            order.reverse()
        for i in order:
            clean(cleanup)
            best[i] = min(best[i], timed(argvs[i]))
    return best


JOB_NAMES = ("dedup", "merge", "repair", "flows", "anonymize")


def job_list(value: str) -> list[str]:
    names = value.split(",")
    unknown = [n for n in names if n not in JOB_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"{','.join(unknown)}: not a job (jobs: {', '.join(JOB_NAMES)})")
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=job_list, default=list(JOB_NAMES), metavar="JOB,...",
                    help=f"only these jobs ({', '.join(JOB_NAMES)})")
    ap.add_argument("--pcap-bin", action="append", default=[], type=label_and_path, metavar="LABEL=PATH",
                    help="also this sluice-pcap binary (e.g. an older build), runs alternating; repeatable")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else [])
    if os.geteuid() != 0:
        print("bench_pcap: needs root (the lab that makes the templates)", file=sys.stderr)
        return
    n = int(os.environ.get("BENCH_PACKETS", "500000"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_pcap."))
    try:
        tpl = tmp / "templates.pcap"
        capture_templates(tpl)
        templates = read_templates(tpl)
        base, span = tmp / "base.pcap", tmp / "span.pcap"
        base_data = generate(templates, n, copies=False)
        base.write_bytes(base_data)
        span.write_bytes(generate(templates, n, copies=True))
        parts = []
        for i, part in enumerate(split(base_data, 4)):
            p = tmp / f"part{i}.pcap"
            p.write_bytes(part)
            parts.append(p)
        damaged = tmp / "damaged.pcap"
        damaged.write_bytes(damage(base_data))
        key = tmp / "key"
        key.write_text(KEY_HEX)
        key.chmod(0o600)
        key_bytes = bytes.fromhex(KEY_HEX)
        out, peer_out, nfdir = tmp / "out.pcap", tmp / "peer.pcap", tmp / "nf"
        nfdir.mkdir()
        sp = str(SLUICE_PCAP)
        jobs = [
            ("dedup (1 ms window)", f"{2 * n} pkts", [sp, "dedup", span, out],
             ["editcap", "-w", "0.001", span, peer_out]),
            ("merge (4 files)", f"{n} pkts", [sp, "merge", "-o", out, *parts],
             ["mergecap", "-F", "nsecpcap", "-w", peer_out, *parts]),
            ("repair (damaged)", f"{n} pkts", [sp, "repair", damaged, out], ["pcapfix", "-o", peer_out, damaged]),
            ("flows", f"{n} pkts", [sp, "flows", "-o", tmp / "flows.csv", base], ["nfpcapd", "-r", base, "-w", nfdir]),
            ("anonymize (~100k addrs)", f"{n} pkts",
             [sp, "anonymize", "--format", "pcap", "--key-file", key, base, out],
             [b"traceanon", b"-c", key_bytes, b"-s", b"-d", os.fsencode(f"pcapfile:{base}"),
              os.fsencode(f"pcapfile:{peer_out}")]),
        ]
        print(f"{'job':26} {'input':>12} {'sluice s':>9} {'cpu':>6} {'peer':>9} {'peer s':>9} {'cpu':>6} "
              f"{'speedup':>8}")
        for name, size, ours, theirs in jobs:
            if name.split()[0] not in args.jobs:
                continue
            ours = [a if isinstance(a, bytes) else str(a) for a in ours]
            theirs = [a if isinstance(a, bytes) else str(a) for a in theirs]
            if args.pcap_bin:  # the same arguments to each binary, their runs taking turns
                argvs = [ours, *([str(path), *ours[1:]] for _label, path in args.pcap_bin)]
                (o_wall, o_cpu), *others = best_alternating(3, argvs, [out, tmp / "flows.csv"])
            else:
                o_wall, o_cpu = best_of(3, ours, [out, tmp / "flows.csv"])
                others = []
            p_wall, p_cpu = best_of(3, theirs, [peer_out, nfdir])
            peer = theirs[0].decode() if isinstance(theirs[0], bytes) else theirs[0]
            print(f"{name:26} {size:>12} {o_wall:9.3f} {o_cpu:6.2f} {peer:>9} {p_wall:9.3f} {p_cpu:6.2f} "
                  f"{p_wall / o_wall:7.1f}x", flush=True)
            for (label, _path), (x_wall, x_cpu) in zip(args.pcap_bin, others, strict=True):
                print(f"{name:26} {size:>12} {o_wall:9.3f} {o_cpu:6.2f} {label:>9} {x_wall:9.3f} {x_cpu:6.2f} "
                      f"{x_wall / o_wall:7.2f}x", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
