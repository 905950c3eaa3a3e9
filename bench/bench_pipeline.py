"""The pipeline's steps on this machine, side by side from one run: MB/s of each step against the
writer's sustained rate, the backup against `cp` + `sha256sum`, the flows step (sluice-pcap flows
+ Parquet) against `nfpcapd` on the same files, and the peak memory (RSS, with the tools a step
runs) of each step at two file sizes: it must not grow with the file.

Inputs: bench_pcap's generated files (real lab packets as templates, addresses spread over
198.18.0.0/15), a plain one and a SPAN one (every packet twice), each at two sizes.

    python -m bench bench_pipeline      (BENCH_PACKETS=400000 by default: the larger size;
                                         BENCH_WRITER_MBPS: the writer's sustained rate to compare
                                         with, default bench_capture's flood, 1442 B every 8 µs)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_pcap import KEY_HEX, capture_templates, generate, read_templates

REPO = Path(__file__).resolve().parent.parent
WRITER_MBPS = float(os.environ.get("BENCH_WRITER_MBPS", 1442 / 8e-6 / 1e6))

# One step in a child Python, so its peak RSS (the child's and the tools it waits for: wait4) is
# its own. Prints the step's result as JSON.
STEP = """
import json, sys
from pathlib import Path
from appliance import pipeline
step, spool, rel, target, processed, publish, key = sys.argv[1:8]
steps = json.loads(sys.argv[8])
if step == "backup":
    r = pipeline.backup(Path(spool), rel, [target])
elif step == "check":
    r = pipeline.check(Path(spool), rel)
elif step == "dedup":
    r = pipeline.dedup(Path(spool), rel, Path(processed), steps)
elif step == "flows":
    r = pipeline.flows(rel, Path(processed), steps, "bench", "")
else:  # publish, or publish_age: the same encrypted to one age recipient (argv[9])
    recipients = sys.argv[9:10] if step == "publish_age" else None
    r = pipeline.publish(rel, steps, Path(publish + ("-age" if recipients else "")), key, "bench", recipients,
                         Path(processed) / pipeline.STAGING)
print(json.dumps(r))
"""


def run_measured(argv: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KiB of the child and the tools it waited for, stdout).

    Through GNU time: a peak RSS survives fork and exec, so a child forked straight from this
    (large) process would report this process's size; time's child is forked from time."""
    with tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], cwd=REPO, capture_output=True,
                              text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}): {proc.stderr[-300:]}")
        return wall, int(rss.read().split()[-1]), proc.stdout


def step(name: str, spool: Path, rel: str, target: Path, processed: Path, publish: Path, key: Path,
         steps: dict, recipient: str = "") -> tuple[float, int, dict]:
    os.sync()  # nothing left dirty by the previous step is paid by this one
    wall, rss, out = run_measured([sys.executable, "-c", STEP, name, str(spool), rel, str(target), str(processed),
                                   str(publish), str(key), json.dumps(steps), recipient])
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("ok"):
        raise RuntimeError(f"{name}: {result.get('error')}")
    return wall, rss, result


def main() -> None:
    if os.geteuid() != 0:
        print("bench_pipeline: needs root (the lab that makes the templates)", file=sys.stderr)
        return
    big = int(os.environ.get("BENCH_PACKETS", "400000"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline.", dir="/var/tmp"))
    try:
        tpl = tmp / "templates.pcap"
        capture_templates(tpl)
        templates = read_templates(tpl)
        spool = tmp / "spool"
        (spool / "bench").mkdir(parents=True)
        key = tmp / "key"
        key.write_text(KEY_HEX)
        key.chmod(0o600)
        # publish_age: the publish step with `[pipeline] publish_recipients` (one age recipient)
        recipient = ""
        if shutil.which("age-keygen"):
            recipient = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
            recipient = next(line.split(": ", 1)[1] for line in recipient.splitlines() if "public key: " in line)
        print(f"writer's sustained rate compared with: {WRITER_MBPS:.0f} MB/s")
        print(f"{'step':11} {'file':>13} {'MB':>7} {'s':>7} {'MB/s':>8} {'x writer':>8} {'peak RSS MiB':>12}")
        rows: dict[str, list[int]] = {}
        for n in (big // 4, big):
            rel = f"bench/span-{n}.pcap"
            (spool / rel).write_bytes(generate(templates, n, copies=True))
            mb = (spool / rel).stat().st_size / 1e6
            target, processed, publish = tmp / f"backup-{n}", tmp / f"processed-{n}", tmp / f"publish-{n}"
            target.mkdir()
            steps: dict = {}
            for name in ("backup", "check", "dedup", "flows", "publish", *(["publish_age"] if recipient else [])):
                wall, rss, result = step(name, spool, rel, target, processed, publish, key, steps, recipient)
                steps[name] = result
                rows.setdefault(name, []).append(rss)
                print(f"{name:11} {f'{2 * n} pkts':>13} {mb:7.1f} {wall:7.3f} {mb / wall:8.1f} "
                      f"{mb / wall / WRITER_MBPS:8.2f} {rss / 1024:12.1f}", flush=True)
            # the peers on the same file
            os.sync()
            dst = tmp / f"cp-{n}.pcap"
            t0 = time.perf_counter()
            subprocess.run(["cp", str(spool / rel), str(dst)], check=True)
            subprocess.run(["sync", str(dst)], check=True)
            subprocess.run(["sha256sum", str(dst)], check=True, stdout=subprocess.DEVNULL)
            cp_wall = time.perf_counter() - t0
            print(f"{'cp+sync+sha256sum':26} {mb:7.1f} {cp_wall:7.3f} {mb / cp_wall:8.1f}", flush=True)
            nfdir = tmp / f"nf-{n}"
            nfdir.mkdir()
            os.sync()
            nf_wall, nf_rss, _ = run_measured(["nfpcapd", "-r", str(processed / rel), "-w", str(nfdir)])
            print(f"{'nfpcapd (dedup copy)':26} {(processed / rel).stat().st_size / 1e6:7.1f} {nf_wall:7.3f} "
                  f"{(processed / rel).stat().st_size / 1e6 / nf_wall:8.1f} {'':8} {nf_rss / 1024:12.1f}", flush=True)
        growth = ", ".join(f"{s} {r[1] / r[0]:.2f}x" for s, r in rows.items())
        print(f"peak RSS, 4x larger file / smaller: {growth}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
