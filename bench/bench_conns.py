"""`sluice conns` against `ss` on the same sockets, side by side from one run.

In a network namespace of its own, a helper process holds BENCH_CONNS TCP connections over
loopback (twice as many sockets, plus a listener) and as many connected UDP sockets. Then:
- one dump of every socket with its owner: Sluice's first dump (sock_diag dump, a full /proc fd
  scan, the table), a steady dump (nothing new: no scan), and `ss -tuanpi` (sock_diag, tcp_info and
  its own /proc scan for -p), `ss -tuani` (no owners);
- the agent's peak memory (ru_maxrss) while it tracks them all (`sluice conns --log /dev/null`).

    python -m bench bench_conns            (BENCH_CONNS=5000 by default)
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

HOLDER = r"""
import resource, socket, sys, time
n = int(sys.argv[1])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(n)
port = srv.getsockname()[1]
held = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept(); held += [c, a]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(("127.0.0.1", 9)); held.append(u)
print("ready", flush=True)
sys.stdin.read()
"""


def _best(fn, rounds: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from appliance.lab import netns

    n = int(os.environ.get("BENCH_CONNS", "5000"))
    n = min(n, (resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 100) // 3)
    ns = "sluice-bc-" + os.urandom(3).hex()
    netns.add_namespace(ns)
    holder = subprocess.Popen(netns.exec_argv(ns, [sys.executable, "-c", HOLDER, str(n)]), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        code = (
            "import time, sys\n"
            "from appliance.conns.sockets import Dumper\n"
            "from appliance.conns.tracker import Tracker\n"
            "d = Dumper(); out = []\n"
            "for _ in range(3):\n"
            "    t = Tracker('bench', lambda e: None)\n"
            "    t0 = time.perf_counter(); t.on_dump(d.dump()); t1 = time.perf_counter()\n"
            "    t.on_dump(d.dump()); t2 = time.perf_counter()\n"
            "    out.append((t1 - t0, t2 - t1, len(t.table), sum(1 for x in t.table.values() if x.proc)))\n"
            "first = min(o[0] for o in out); steady = min(o[1] for o in out)\n"
            "print(first, steady, out[0][2], out[0][3])\n"
        )
        got = subprocess.run(netns.exec_argv(ns, [sys.executable, "-c", code]), cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
        first, steady, tracked, owned = float(got[0]), float(got[1]), int(got[2]), int(got[3])
        ss_p = _best(lambda: subprocess.run(netns.exec_argv(ns, ["ss", "-tuanpi"]), capture_output=True, check=True))
        ss = _best(lambda: subprocess.run(netns.exec_argv(ns, ["ss", "-tuani"]), capture_output=True, check=True))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(netns.exec_argv(ns, [sys.executable, "-m", "appliance.cli", "conns", "--log", "/dev/null",
                                            "--interval", "0.5", "--duration", "2"]), cwd=REPO, check=True)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"{3 * n + 1} sockets ({n} TCP connections over loopback, {n} UDP), best of 3, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"  sluice conns first dump (dump + /proc scan + table): {first:.3f} s, "
              f"{tracked} tracked, {owned} with owner")
        print(f"  sluice conns steady dump (nothing new):               {steady:.3f} s")
        print(f"  ss -tuanpi (with processes):                          {ss_p:.3f} s (a process start included)")
        print(f"  ss -tuani (no processes):                             {ss:.3f} s (a process start included)")
        note = "" if rss > before else " (at most: an earlier child peaked higher)"
        print(f"  sluice conns agent peak RSS: {rss / 1024:.0f} MiB{note}")
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=30)
        netns.delete_namespace(ns)


if __name__ == "__main__":
    main()
