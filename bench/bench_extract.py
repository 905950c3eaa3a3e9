"""sluice extract against mergecap | editcap | tcpdump (and Stenographer, where it runs), side by
side from one run, on a spool of at least 4 GB.

The spool: real lab packets (bench_pcap's templates: ping, HTTP, DNS on the lab's SPAN port)
with their IPv4 addresses spread over 8000 hosts of the benchmarking range 198.18.0.0/15 (a few
busy hosts, many quiet ones) and their TCP/UDP ports over common services and ephemeral ports,
spread evenly over two hours of timestamps, written by the real writer (`sluice-capture -r -
--rotate-size`, the default 1G and 64M: pcapng, ns, the spool's names and rotation). It is kept in
/var/tmp/sluice-bench-extract/ and reused by later runs (BENCH_EXTRACT_REGEN=1 makes it again).

Measured: the catalog built from nothing (the index cost per GB, in CPU and bytes), a rebuild
from the sidecars (per 1000 files), and three queries, each checked to return the same packets
as the peer pipeline: a busy host over 5 minutes, a quiet host over 5 minutes, and a rare port
over the whole spool. Each query runs three times on each side, alternating, and the fastest
run of each side is shown; `sluice` is the venv's command with its bytecode compiled, as the
package's postinst compiles it on a box. The peer pipeline reads the files of the window, as an operator picks them
by name: `mergecap -w - FILES | editcap -A FROM -B TO - - | tcpdump -r - -w OUT FILTER`.
Then Stenographer (bench/stenographer_run.py): a 120 s sample of the spool replayed into a veth its
stenotype captures, the same host and port queries timed through stenoread and through sluice
extract over the same window, with both packet counts.

    python -m bench bench_extract      (BENCH_EXTRACT_GB=4 by default)
"""

from __future__ import annotations

import compileall
import json
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
from typing import Any

from bench import stenographer_run
from bench.bench_pcap import capture_templates, read_templates

REPO = Path(__file__).resolve().parent.parent
SLUICE_PCAP = REPO / "native" / "build" / "sluice-pcap"
SLUICE_CAPTURE = REPO / "native" / "build" / "sluice-capture"
WORK = Path("/var/tmp/sluice-bench-extract")
BENCH_NET = 0xC6120000  # 198.18.0.0/15 (RFC 2544), as bench_pcap
HOSTS = 8000
START_NS = 1_795_939_200 * 10**9  # 2026-11-29T08:00:00Z
SPAN_NS = 7200 * 10**9
RARE_PORT = 5060  # UDP, in three short bursts only
SERVICES = (443, 80, 53, 22, 123, 8080, 3306, 25)
GENERATION = "v1"


def _addr(k: int) -> int:
    return BENCH_NET + (k * 7919) % 131072


def generate(templates: list[bytes], total_bytes: int, out: object) -> tuple[int, int]:
    """Writes a pcap (ns) stream of about total_bytes to out; returns (packets, bytes)."""
    rnd = random.Random(14)
    write = out.write  # type: ignore[attr-defined]
    write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
    mean = sum(len(t) for t in templates) / len(templates)
    n = int(total_bytes / (mean + 16))
    step = SPAN_NS // n
    bursts = [START_NS + SPAN_NS * k // 4 for k in (1, 2, 3)]
    ts, written, buf = START_NS, 0, []
    src = dst = sport = dport = 0
    for i in range(n):
        t = templates[i % len(templates)]
        if i % 20 == 0:  # a new flow: a skewed choice of hosts (few busy, many quiet)
            src = _addr(int(HOSTS * rnd.random() ** 3))
            dst = _addr(int(HOSTS * rnd.random() ** 3))
            sport, dport = 1024 + rnd.randrange(64000), SERVICES[int(len(SERVICES) * rnd.random() ** 2)]
            if any(b <= ts < b + 2 * 10**9 for b in bursts):
                dport = RARE_PORT
        frame = bytearray(t)
        frame[26:34] = struct.pack("!II", src, dst)
        if frame[23] in (6, 17) and len(frame) >= 38:
            ihl = (frame[14] & 0x0F) * 4
            frame[14 + ihl: 18 + ihl] = struct.pack("!HH", sport, dport)
        buf.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)))
        buf.append(bytes(frame))
        written += len(frame) + 16
        ts += step + rnd.randrange(step // 4 + 1)
        if len(buf) >= 20000:
            write(b"".join(buf))
            buf = []
    write(b"".join(buf))
    return n, written


def make_spool(gb: float, name: str = "spool", rotate: str = "64M") -> tuple[Path, dict[str, Any]]:
    spool = WORK / name
    marker = WORK / f"{name}-{GENERATION}-{gb:g}GB-{rotate}.json"
    if marker.exists() and os.environ.get("BENCH_EXTRACT_REGEN") != "1":
        return spool, json.loads(marker.read_text())
    shutil.rmtree(spool, ignore_errors=True)
    for old in WORK.glob(f"{name}-*.json"):
        old.unlink()
    (spool / "bench").mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract."))
    try:
        tpl = tmp / "templates.pcap"
        capture_templates(tpl)
        templates = [t for t in read_templates(tpl) if len(t) >= 42]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    writer = subprocess.Popen([str(SLUICE_CAPTURE), "-r", "-", "-w", str(spool / "bench"), "--host", "bench",
                               "--date-dirs", "--rotate-size", rotate, "--stats-interval", "5"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert writer.stdin is not None
    packets, nbytes = generate(templates, int(gb * 1e9), writer.stdin)
    writer.stdin.close()
    if writer.wait() != 0:
        raise RuntimeError(f"sluice-capture -r -: {writer.stderr.read().decode()[-300:] if writer.stderr else ''}")
    info = {"packets": packets, "bytes": nbytes, "seconds": time.perf_counter() - t0}
    marker.write_text(json.dumps(info))
    return spool, info


def timed(argv: list[str] | str, shell: bool = False) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """(wall s, CPU s of the children, the process) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, shell=shell, capture_output=True)  # noqa: S602 (our own pipeline text)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv if shell else argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-300:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def count(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[-1])


ROUNDS = 3  # runs of each query by each side, the fastest shown

STENO_SAMPLE_S = 120  # seconds of the spool replayed into Stenographer (it holds the port burst)


def bench_stenographer(spool: Path, sluice: list[str]) -> None:
    """The same queries through stenoread, on a sample of the spool that Stenographer captured
    (bench/stenographer_run.py), and through sluice extract over the same packets."""
    f = START_NS + SPAN_NS // 2 - 5 * 10**9
    t = f + STENO_SAMPLE_S * 10**9
    fs, ts = f"{f // 10**9}.{f % 10**9:09d}", f"{t // 10**9}.{t % 10**9:09d}"
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    sample = out / "steno-sample.pcap"
    timed([*sluice, "extract", "--spool", str(spool), "--from", fs, "--to", ts, "--format", "pcap", "-o",
           str(sample)])
    print(f"\nstenographer: a {STENO_SAMPLE_S} s sample of the spool ({count(sample)} packets, "
          f"{sample.stat().st_size / 1e6:.0f} MB), replayed into a veth it captures "
          f"(tcpreplay --mbps={stenographer_run.REPLAY_MBPS}); sluice extract reads the same window of the spool")
    busy, quiet = _addr(0), _addr(HOSTS // 8)
    ip = lambda a: ".".join(str(a >> s & 255) for s in (24, 16, 8, 0))  # noqa: E731
    # (label, sluice's BPF, stenographer's query language: no 'udp port', 'udp and port')
    queries = [(f"host {ip(busy)} (busiest)", f"host {ip(busy)}", f"host {ip(busy)}"),
               (f"host {ip(quiet)} (quiet)", f"host {ip(quiet)}", f"host {ip(quiet)}"),
               (f"udp port {RARE_PORT}", f"udp port {RARE_PORT}", f"udp and port {RARE_PORT}"),
               (f"port {RARE_PORT} (tcp and udp)", f"port {RARE_PORT}", f"port {RARE_PORT}")]
    try:
        steno, facts = stenographer_run.run(sample, [q for _, _, q in queries], out)
    except stenographer_run.StenoUnavailable as e:
        print(f"stenographer: not run: {e}")
        return
    print(f"stenographer captured it in {facts['files']} files, {facts['packet_bytes'] / 1e6:.0f} MB of blocks, "
          f"index {facts['index_bytes'] / 1e6:.1f} MB (replay {facts['replay_s']:.1f} s)")
    print(f"{'query':34} {'packets':>8} {'sluice s':>9} {'stenoread s':>12} {'steno pkts':>10} {'steno/sluice':>12}")
    for (name, bpf, _), st in zip(queries, steno, strict=True):
        ours = out / "sluice.pcapng"
        best = min(timed([*sluice, "extract", "--spool", str(spool), "--from", fs, "--to", ts, "--filter", bpf,
                          "-o", str(ours)])[0] for _ in range(2))
        n = count(ours)
        ref = subprocess.run(f"tcpdump -r {sample} -w - '{bpf}' 2>/dev/null | capinfos -c -M - | tail -1",
                             shell=True, capture_output=True, text=True).stdout.split()  # noqa: S602
        note = "" if n == st.packets else f"  MISMATCH (tcpdump on the sample: {ref[-1] if ref else '?'})"
        print(f"{name:34} {n:>8} {best:9.2f} {st.seconds:12.2f} {st.packets:>10} "
              f"{st.seconds / best:11.2f}x{note}", flush=True)
    print(f"stenoread query form: '{steno[0].query}'")


def drop_catalog(spool: Path, sidecars: bool) -> None:
    for p in [spool / "catalog.sqlite", spool / "catalog.sqlite-wal", spool / "catalog.sqlite-shm"]:
        p.unlink(missing_ok=True)
    if sidecars:
        shutil.rmtree(spool / ".index", ignore_errors=True)


def bench_spool(spool: Path, gen: dict[str, Any], rotate: str, sluice: list[str]) -> None:
    files = sorted(p for p in spool.rglob("*.pcapng"))
    size = sum(p.stat().st_size for p in files)
    gb = size / 1e9
    print(f"\nspool with --rotate-size {rotate}: {len(files)} files, {gb:.2f} GB, {gen['packets']} packets, "
          f"{HOSTS} hosts (generated and written in {gen['seconds']:.0f} s)")
    # index from nothing: what every file costs once, right after it closes
    drop_catalog(spool, sidecars=True)
    wall, cpu, _ = timed([*sluice, "catalog", "rebuild", "--spool", str(spool)])
    side = sum(p.stat().st_size for p in (spool / ".index").rglob("*.json"))
    pos = sum(p.stat().st_size for p in (spool / ".index").rglob("*.pos"))
    db = sum(p.stat().st_size for p in spool.glob("catalog.sqlite*"))
    print(f"index from nothing: {wall:.1f} s wall, {cpu:.1f} s CPU = {cpu / gb:.2f} CPU s/GB; per GB: "
          f"catalog {db / gb / 1e6:.1f} MB, JSON sidecars {side / gb / 1e6:.1f} MB, positions {pos / gb / 1e6:.1f} MB "
          f"({(db + side + pos) / size * 100:.1f} % of the data in all)")
    rows = json.loads(timed([*sluice, "catalog", "ls", "--spool", str(spool), "--json"])[2].stdout)
    mid = START_NS + SPAN_NS // 2 + 7 * 10**9
    busy, quiet = _addr(0), _addr(HOSTS // 8)
    ip = lambda a: ".".join(str(a >> s & 255) for s in (24, 16, 8, 0))  # noqa: E731
    queries = [
        (f"host {ip(busy)} (busiest), 5 min", mid, mid + 300 * 10**9, f"host {ip(busy)}"),
        (f"host {ip(quiet)} (quiet), 5 min", mid, mid + 300 * 10**9, f"host {ip(quiet)}"),
        (f"udp port {RARE_PORT}, whole spool", START_NS, START_NS + 2 * SPAN_NS, f"udp port {RARE_PORT}"),
    ]
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    print(f"{'query':34} {'files':>5} {'packets':>8} {'sluice s':>9} {'cpu':>6} {'pipeline s':>10} {'cpu':>6} "
          f"{'speedup':>8}")
    for name, f, t, bpf in queries:
        window = [spool / r["path"] for r in rows if r["first_ns"] is not None and r["last_ns"] >= f
                  and r["first_ns"] < t]
        fs, ts = f"{f // 10**9}.{f % 10**9:09d}", f"{t // 10**9}.{t % 10**9:09d}"
        ours, theirs = out / "sluice.pcapng", out / "peer.pcap"
        pipeline = (f"mergecap -w - {' '.join(map(str, window))} | editcap -A {fs} -B {ts} - - | "
                    f"tcpdump -r - -w {theirs} --time-stamp-precision=nano '{bpf}'")
        best_o = best_p = (float("inf"), 0.0)
        for _ in range(ROUNDS):  # alternating; the later runs of each on a warm page cache, both alike
            o = timed([*sluice, "extract", "--spool", str(spool), "--from", fs, "--to", ts, "--filter", bpf, "-o",
                       str(ours)])
            p = timed(pipeline, shell=True)
            best_o, best_p = min(best_o, o[:2]), min(best_p, p[:2])
        n_o, n_p = count(ours), count(theirs)
        if n_o != n_p:
            raise RuntimeError(f"{name}: sluice extract gave {n_o} packets, the pipeline {n_p}")
        print(f"{name:34} {len(window):>5} {n_o:>8} {best_o[0]:9.2f} {best_o[1]:6.2f} {best_p[0]:10.2f} "
              f"{best_p[1]:6.2f} {best_p[0] / best_o[0]:7.1f}x", flush=True)


def main() -> None:
    if os.geteuid() != 0:
        print("bench_extract: needs root (the lab that makes the templates)", file=sys.stderr)
        return
    gb = float(os.environ.get("BENCH_EXTRACT_GB", "4"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    # `sluice` as an operator runs it: the venv's command, with the modules' bytecode compiled as
    # the package's postinst compiles it on a box (make bench does it too; a no-op when current).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "appliance", quiet=1)
    command = Path(sys.executable).with_name("sluice")
    sluice = [str(command)] if command.exists() else [sys.executable, "-m", "appliance.cli"]
    # the writer's default file size first, then smaller files (a busier box rotates sooner)
    for name, rotate in (("spool1g", "1G"), ("spool", "64M")):
        spool, gen = make_spool(gb, name, rotate)
        bench_spool(spool, gen, rotate, sluice)
    # rebuild per 1000 files: a spool of about 1000 small files (the same traffic, 48 KiB files)
    many, _ = make_spool(0.05, "many", "48K")
    n_many = len(list(many.rglob("*.pcapng")))
    print()
    for label, drop_sidecars in (("from nothing (indexing every file)", True), ("from the sidecars", False)):
        drop_catalog(many, drop_sidecars)
        wall, cpu, _ = timed([*sluice, "catalog", "rebuild", "--spool", str(many)])
        print(f"catalog rebuild {label}: {wall:.2f} s wall, {cpu:.2f} s CPU for {n_many} files = "
              f"{wall / n_many * 1000:.1f} s per 1000 files")
    bench_stenographer(make_spool(gb, "spool", "64M")[0], sluice)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
