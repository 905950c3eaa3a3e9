"""Small wrappers over iproute2 for network namespaces: the lab's and the tests' only way in.

Everything is created inside namespaces (veth pairs are made with both ends placed in named
namespaces), so the machine's own interfaces are never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence

from appliance.errors import SluiceError

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def _effective_capabilities() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def require_root(what: str) -> None:
    """Namespaces need CAP_SYS_ADMIN and links CAP_NET_ADMIN: what root has, checked as such."""
    caps = _effective_capabilities()
    if not (caps >> CAP_SYS_ADMIN) & 1 or not (caps >> CAP_NET_ADMIN) & 1:
        raise SluiceError(f"{what} needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN for network namespaces): "
                          "run it as root")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; a failure becomes one SluiceError line with iproute2's own message."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise SluiceError(f"ip {' '.join(args)}: {msg}")
    return proc


def list_namespaces() -> list[str]:
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(names)


def add_namespace(name: str) -> None:
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def run_in(ns: str, argv: Sequence[str], check: bool = True, timeout: float | None = 60,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(exec_argv(ns, argv), capture_output=True, text=True, timeout=timeout,
                          **kwargs)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise SluiceError(f"in {ns}: {' '.join(argv)}: {err[-1] if err else f'exit {proc.returncode}'}")
    return proc


def listening(ns: str, port: int, proto: str = "tcp") -> list[str]:
    """`ss` rows of sockets listening on port in ns (proto "tcp" or "udp"): fields State Recv-Q ..."""
    flag = "-ltnH" if proto == "tcp" else "-lunH"
    return run_in(ns, ["ss", flag, "sport", f"= :{port}"], check=False).stdout.splitlines()


def wait_listening(ns: str, port: int, proto: str = "tcp", timeout: float = 10.0) -> None:
    """Until something listens on proto/port in ns; SluiceError after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(ns, port, proto):
            return
        time.sleep(0.05)  # a socket table, polled: no event says a program has bound
    raise SluiceError(f"nothing listens on {proto}/{port} in {ns} after {timeout:g} s")


def pids_in(ns: str) -> list[int]:
    proc = ip("netns", "pids", ns, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def kill_all_in(ns: str, grace: float = 2.0) -> None:
    """Stop every process that lives in namespace ns: SIGTERM, then SIGKILL after grace."""
    pids = pids_in(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if pids:
                time.sleep(0.05)
        if not pids:
            return


def _alive(pid: int) -> bool:
    """True while pid runs. A dead child of ours is reaped here; a zombie of another's counts as gone."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def delete_namespace(name: str) -> None:
    kill_all_in(name)
    ip("netns", "del", name, check=False)


def add_veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int = 1500) -> None:
    """A veth pair with one end in each namespace, both up, created inside ns_a."""
    ip("-n", ns_a, "link", "add", if_a, "mtu", str(mtu), "type", "veth", "peer", "name", if_b,
       "netns", ns_b)
    ip("-n", ns_a, "link", "set", if_a, "up")
    ip("-n", ns_b, "link", "set", if_b, "up")


def link_stats(ns: str, ifname: str) -> dict[str, int]:
    """rx/tx packet and byte counters of one interface, from `ip -s -j link`."""
    proc = ip("-n", ns, "-s", "-j", "link", "show", "dev", ifname)
    data = json.loads(proc.stdout)[0]["stats64"]
    return {
        "rx_packets": data["rx"]["packets"], "rx_bytes": data["rx"]["bytes"],
        "rx_dropped": data["rx"]["dropped"], "tx_packets": data["tx"]["packets"],
        "tx_bytes": data["tx"]["bytes"],
    }
