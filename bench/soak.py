"""`make soak`: the supervisor under the lab's flood at half the measured ceiling for an hour
(SOAK_SECONDS), with the box's default capture settings, on a spool of its own.

1. a lab, and a 12 GiB ext4 spool in a sparse file on a loop device with direct I/O (retention runs for real: the flood
   fills it many times over, the disk of the machine is not filled);
2. `sluice selftest` with the soak's config measures the lossless ceiling at the flood's frame
   size; the flood is shaped to half of it as seen on the SPAN port (the lab mirrors every h1->h2
   frame twice, so trafgen sends a quarter);
3. `sluice supervise` on span0; trafgen floods h1->h2 for the whole run; every second: the
   resident memory of the supervisor and the writer (psutil), their counters, span0's counters;
4. at the end: 0 packets lost (kernel ring, writer, span0 backlog), resident memory flat, file
   sizes and rotation intervals regular (the journal's file_closed events), every file left in
   the spool valid (`sluice-pcap check`);
5. a report: soak.json, rss.png, rate.png, report.md in /var/tmp/sluice-soak/LAB/.

    python -m bench.soak [--seconds 3600] [--size 1442] [--pps N]   (exit 1 when a check fails)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from appliance.errors import SluiceError
from appliance.journal import read_events
from appliance.lab import netns, traffic
from appliance.lab.commands import lab_down, lab_up
from appliance.lab.harness.mounts import loop_fs
from appliance.lab.harness.supervise import Supervise, writers_up
from appliance.lab.harness.trafgen import Trafgen
from appliance.selftest.rig import FCS, shape
from appliance.watchdogs.disk import capture_files

REPO = Path(__file__).resolve().parent.parent
PCAP = REPO / "native" / "build" / "sluice-pcap"
ROOT = Path("/var/tmp/sluice-soak")
# Room for the floor (25 %) to be more than twice the writer's "auto" buffers (RAM/16, up to
# 4 GiB): a spool smaller than that is filled between two retention passes when the buffers
# flush after a slow spell, which a real spool of terabytes never is.
SPOOL_SIZE = "12G"
ROTATE = 64 * 2**20
WARMUP = 30.0  # seconds before resident memory counts as settled


def config_text(spool: Path) -> str:
    return (f'[capture]\ninterfaces = ["span0"]\nspool = "{spool}"\nhost = "soak"\nrotate_size = "64M"\n'
            '[retention]\nmin_free = "25%"\n[metrics]\nlisten = "127.0.0.1:0"\n[watchdogs]\nsmart = false\n')


def selftest_ceiling(ns: str, config: Path, frame_bytes: int) -> dict[str, Any]:
    argv = netns.exec_argv(ns, [sys.executable, "-m", "appliance.cli", "selftest", "--config", str(config), "--json",
                                "--sizes", str(frame_bytes), "--seconds", "2", "--disk-seconds", "2", "--steps", "4",
                                "--refine", "1"])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        out, err = proc.communicate(timeout=600)
    except BaseException:
        proc.terminate()  # the self-test removes what it made on SIGTERM: give it the time
        proc.wait(timeout=60)
        raise
    if proc.returncode not in (0, 1) or not out.strip():
        raise SystemExit(f"soak: the self-test failed: {err.strip()[-500:]}")
    return json.loads(out)["ceilings"][0]


def rss(proc: psutil.Process | None) -> int:
    try:
        return proc.memory_info().rss if proc else 0
    except psutil.Error:
        return 0


def writer_process(sup: psutil.Process) -> psutil.Process | None:
    try:
        for child in sup.children(recursive=True):
            if child.name() == "sluice-capture":
                return child
    except psutil.Error:
        pass
    return None


def flat(values: list[float], tolerance: float, floor: float) -> tuple[bool, float]:
    """Flat: the second half's maximum stays within tolerance (relative) or floor (absolute)
    of the first half's median. Returns (flat, growth)."""
    if len(values) < 4:
        return True, 0.0
    half = len(values) // 2
    base = statistics.median(values[:half])
    growth = max(values[half:]) - base
    return growth <= max(floor, tolerance * base), growth


def plot(samples: list[dict[str, Any]], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [s["supervisor_rss"] / 2**20 for s in samples], label="sluice supervise")
    ax.plot(t, [s["writer_rss"] / 2**20 for s in samples], label="sluice-capture")
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Resident memory, sampled every second ({title})")
    ax.legend(loc="center right")
    fig.tight_layout()
    rss_png = out / "rss.png"
    fig.savefig(rss_png, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [s["pps"] / 1e3 for s in samples], label="captured")
    ax.plot(t, [s["lost"] / 1e3 for s in samples], label="lost since the start (thousands)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("thousand packets/s")
    ax.set_ylim(bottom=0)
    rated = [s for s in samples if s["pps"] > 0]
    bits_per_packet = statistics.mean(s["bps"] / s["pps"] for s in rated) if rated else 0.0
    if bits_per_packet:
        ax.secondary_yaxis("right", functions=(lambda k: k * 1e3 * bits_per_packet / 1e9,
                                               lambda g: g * 1e9 / bits_per_packet / 1e3)).set_ylabel("Gbit/s")
    ax.set_title(f"Capture rate, every second ({title})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    rate_png = out / "rate.png"
    fig.savefig(rate_png, dpi=100)
    plt.close(fig)
    return [rss_png, rate_png]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def soak(seconds: float, size: int, pps: float | None) -> int:
    netns.require_root("make soak")
    lab = lab_up()
    work = ROOT / lab.id
    spool = work / "spool"
    out = work
    image = Path(tempfile.mkdtemp(prefix="sluice-soak-", dir="/var/tmp")) / "spool.img"
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as running:
            work.mkdir(parents=True, exist_ok=True)
            # The spool: ext4 in a sparse file on a loop device with direct I/O, so that the writer's
            # O_DIRECT writes reach the disk as on a real spool (a buffered loop device would pile the
            # flood up in the page cache and then stall every writer on the machine at once).
            running.enter_context(loop_fs(image, spool, SPOOL_SIZE, mkfs=("-q", "-F", "-m", "0"), direct_io=True))
            config = work / "sluice.toml"
            config.write_text(config_text(spool))
            frame_fcs = size + FCS
            ceiling = selftest_ceiling(lab.capture_ns, config, frame_fcs)
            span_pps = pps if pps else ceiling["lossless_packets_per_second"] / 2
            print(f"soak {lab.id}: ceiling at {frame_fcs} B {ceiling['lossless_packets_per_second']:.0f} pps "
                  f"(limit {ceiling['limit']}); flooding span0 at {span_pps:.0f} pps for {seconds:g} s", flush=True)
            h1 = lab.host("h1")
            # Every h1->h2 frame reaches span0 twice (p1 ingress and p2 egress are mirrored).
            shape(h1.ns, h1.ifname, frame_fcs, span_pps / 2)
            conf = work / "flood.cfg"
            conf.write_text(traffic.trafgen_config(lab, "h1", "h2", size))

            supervise = Supervise(lab.capture_ns, config, spool, log=work / "supervise.log")
            running.callback(supervise.stop, 60)
            try:
                supervise.start(ready=writers_up, timeout=30)
            except SluiceError as err:
                raise SystemExit(f"soak: the supervisor did not come up: {str(err).splitlines()[0][:300]}") from None
            sup = psutil.Process(supervise.pid)
            span0 = netns.link_stats(lab.capture_ns, lab.capture_if)
            # --qdisc-path (trafgen's -q) so that the shaping above applies; no -n: it floods until stopped
            gen = running.enter_context(Trafgen(h1.ns, h1.ifname, conf, cpu=0))
            samples: list[dict[str, Any]] = []
            start = time.monotonic()
            next_tick = start
            shaped = span_pps / 2
            window = (start, span0["rx_packets"])
            while (elapsed := time.monotonic() - start) < seconds:
                now = time.monotonic()
                if now - window[0] >= 10:
                    # The token bucket lands below its rate (trafgen refills its ring in bursts): steer
                    # it by what span0 actually received.
                    arrived = netns.link_stats(lab.capture_ns, lab.capture_if)["rx_packets"]
                    measured = (arrived - window[1]) / (now - window[0])
                    if measured > 0 and abs(measured - span_pps) > 0.03 * span_pps:
                        shaped = min(max(shaped * span_pps / measured, span_pps / 4), span_pps * 2)
                        shape(h1.ns, h1.ifname, frame_fcs, shaped)
                    window = (now, arrived)
                if not gen.running():
                    raise SystemExit(f"soak: trafgen ended: {gen.stderr_text().strip()}")
                writers = supervise.state().get("writers") or [{}]
                w = writers[0]
                totals = w.get("totals", {})
                # Rates as the supervisor computes them, from the writer's consecutive stats lines.
                samples.append({"t": round(elapsed, 2), "supervisor_rss": rss(sup),
                                "writer_rss": rss(writer_process(sup)),
                                "pps": w.get("packets_per_second", 0.0), "bps": w.get("bytes_per_second", 0.0) * 8,
                                "lost": totals.get("kernel_drops", 0) + totals.get("writer_drops", 0),
                                "bytes_written": totals.get("bytes_written", 0)})
                next_tick += 1.0
                time.sleep(max(0.0, next_tick - time.monotonic()))  # a sample a second: the clock is the point
            gen.stop(signal.SIGINT, timeout=10)
            time.sleep(3)  # the capture empties its ring and buffers
            span_end = netns.link_stats(lab.capture_ns, lab.capture_if)
            code = supervise.stop(timeout=60)
            return report(lab.id, out, spool, seconds, size, ceiling, span_pps, samples, span0, span_end, code)
    finally:
        signal.signal(signal.SIGTERM, previous)
        lab_down(lab.id)
        shutil.rmtree(image.parent, ignore_errors=True)


def report(lab_id: str, out: Path, spool: Path, seconds: float, size: int, ceiling: dict[str, Any],
           span_pps: float, samples: list[dict[str, Any]], span0: dict[str, int], span_end: dict[str, int],
           code: int) -> int:
    finals = list(read_events(spool / "journal.jsonl", "writer_final"))
    final = finals[-1] if finals else {}
    closed = list(read_events(spool / "journal.jsonl", "file_closed"))
    files = [f.path for f in capture_files(spool)]  # closed captures (not .part, not .index/ sidecars)
    checks = subprocess.run([str(PCAP), "check", "--json", *map(str, files)], capture_output=True, text=True)
    damaged = [line for line in checks.stdout.splitlines() if '"status": "valid"' not in line]
    # The spool goes with the loop device: keep the journal with the report.
    shutil.copy(spool / "journal.jsonl", out / "journal.jsonl")
    settled = [s for s in samples if s["t"] >= min(WARMUP, seconds / 4)]
    writer_flat, writer_growth = flat([s["writer_rss"] for s in settled], 0.01, 4 * 2**20)
    sup_flat, sup_growth = flat([s["supervisor_rss"] for s in settled], 0.05, 4 * 2**20)
    # Rotation: every file closed during the flood (not the last, closed at the stop) is one
    # rotate_size, and they close at regular intervals.
    sizes = [e["bytes"] for e in closed[:-1]]
    gaps = [b["ts"] - a["ts"] for a, b in zip(closed[:-1], closed[1:-1], strict=False)]
    # The writer rotates before the record that would pass rotate_size (pcapng: whole blocks).
    sizes_regular = bool(sizes) and all(0.99 * ROTATE <= n <= ROTATE for n in sizes)
    gap_cv = statistics.pstdev(gaps) / statistics.mean(gaps) if len(gaps) >= 2 else 0.0
    lost = int(final.get("kernel_drops", 0)) + int(final.get("writer_drops", 0))
    backlog = span_end["rx_dropped"] - span0["rx_dropped"]
    arrived = span_end["rx_packets"] - span0["rx_packets"]
    result = {
        "lab": lab_id, "seconds": seconds, "frame_bytes": size, "ceiling": {k: ceiling[k] for k in (
            "frame_bytes", "lossless_packets_per_second", "limit", "generator_limited")},
        "span_target_pps": round(span_pps), "load_average_end": list(os.getloadavg()),
        "packets": final.get("packets"), "arrived_on_span0": arrived, "lost": lost, "span0_rx_dropped": backlog,
        "mean_pps": round(statistics.mean(s["pps"] for s in samples)) if samples else 0,
        "supervisor_rss_mib": [round(min(s["supervisor_rss"] for s in settled) / 2**20, 1),
                               round(max(s["supervisor_rss"] for s in settled) / 2**20, 1)] if settled else None,
        "writer_rss_mib": [round(min(s["writer_rss"] for s in settled) / 2**20, 1),
                           round(max(s["writer_rss"] for s in settled) / 2**20, 1)] if settled else None,
        "supervisor_rss_growth_bytes": sup_growth, "writer_rss_growth_bytes": writer_growth,
        "files_closed": len(closed), "file_sizes": [min(sizes), max(sizes)] if sizes else None,
        "rotation_interval_seconds": ([round(min(gaps), 2), round(statistics.median(gaps), 2), round(max(gaps), 2)]
                                      if gaps else None),
        "rotation_interval_cv": round(gap_cv, 3), "files_checked": len(files),
        "files_valid": checks.returncode == 0, "damaged": damaged[:20], "supervisor_exit": code,
        "disk_errors": [e.get("error") for e in read_events(spool / "journal.jsonl", "disk_error")],
    }
    failures = []
    if lost or backlog:
        failures.append(f"lost {lost} in the capture, {backlog} in span0's backlog")
    if final.get("packets", 0) < arrived:
        failures.append(f"captured {final.get('packets')} of {arrived} that arrived on span0")
    if not writer_flat:
        failures.append(f"writer resident memory grew by {writer_growth / 2**20:.1f} MiB")
    if not sup_flat:
        failures.append(f"supervisor resident memory grew by {sup_growth / 2**20:.1f} MiB")
    if not sizes_regular:
        failures.append(f"file sizes not regular: {result['file_sizes']}")
    if gaps and max(gaps) > 5 * statistics.median(gaps):
        failures.append(f"rotation stalled: intervals {result['rotation_interval_seconds']} (min, median, max)")
    if checks.returncode != 0 or not files:
        failures.append(f"sluice-pcap check failed: {damaged[:3] or checks.stderr.strip()[-300:]}")
    if result["disk_errors"]:
        failures.append(f"the writer reported disk errors: {result['disk_errors'][:5]}")
    if code != 0:
        failures.append(f"sluice supervise exited with {code}")
    result["failures"] = failures
    (out / "soak.json").write_text(json.dumps({**result, "samples": samples}, indent=1))
    pngs = plot(samples, out, f"{seconds:g} s, {size} B at {span_pps / 1e3:.0f} kpps")
    md = [f"# Soak {lab_id}", "", "```", json.dumps(result, indent=1), "```", ""]
    md += [f"![{p.stem}]({p.name})" for p in pngs]
    (out / "report.md").write_text("\n".join(md) + "\n")
    print(json.dumps(result, indent=1))
    print(f"soak: report in {out}: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the supervisor under the lab's flood for a long time")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 3600)))
    parser.add_argument("--size", type=int, default=1442, help="flood frame size without FCS (60..1514)")
    parser.add_argument("--pps", type=float, default=None,
                        help="packets/s on the SPAN port instead of half the measured ceiling")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="only draw the PNGs again from DIR/soak.json")
    args = parser.parse_args(argv)
    if args.plot:
        doc = json.loads((args.plot / "soak.json").read_text())
        plot(doc["samples"], args.plot, f"{doc['seconds']:g} s, {doc['frame_bytes']} B at "
                                        f"{doc['span_target_pps'] / 1e3:.0f} kpps")
        return 0
    return soak(args.seconds, args.size, args.pps)


if __name__ == "__main__":
    sys.exit(main())
