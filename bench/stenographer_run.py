"""Stenographer, run for the extract bench without systemd: the Debian package's daemon started
directly as a process, as its unit would (user `stenographer`, stenotype setcap'd), in a network
namespace of its own.

One run: a namespace with a veth pair (feed0 -> cap0) and its own loopback; a temp dir under
/var/tmp with the config (one thread, packet and index dirs beside it, port 1234 on 127.0.0.1 of
that namespace), a CA, server and client certs for 127.0.0.1 made with openssl;
`stenographer -config` started (its stenotype captures cap0 by AF_PACKET); the sample replayed into
feed0 by tcpreplay at a rate it keeps without loss; then, once stenotype has closed the file with
the last packet and the daemon has opened it, each query timed through `stenoread` (the package's
script: stenocurl with the client certs, then tcpdump -w). Everything (processes, namespace, dir)
is removed whatever happens (STENO_KEEP=1 keeps the dir and its stenographer.log for a look).
What fails raises StenoUnavailable with the command and its error.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.lab import netns

PORT = 1234
# stenotype rotates a packet file after this many seconds (the default is 60) and writes a block
# at least every second, so the last packets become queryable a few seconds after the replay.
STENOTYPE_FLAGS = ["--fileage_sec=5", "--blockage_sec=1",
                   # its watchdog aborts a thread that sees no packets for a while (it did here,
                   # idle before the replay), and the daemon then exits to avoid a crash loop
                   "--no_watchdogs",
                   # its log (through the daemon's) says when its thread reads packets: the replay
                   # waits for that, since what comes before its AF_PACKET ring exists is not seen
                   "-v"]
REPLAY_MBPS = 100
INDEX_TIMEOUT_S = 90.0


class StenoUnavailable(RuntimeError):
    """Stenographer could not be run here; the message names the command and its error."""


@dataclass
class StenoQuery:
    query: str
    seconds: float
    packets: int


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise StenoUnavailable(f"`{' '.join(argv)}` failed ({proc.returncode}): {err[-1] if err else ''}")
    return proc


def _make_certs(certs: Path, owner: pwd.struct_passwd) -> None:
    """A CA, a server and a client cert for 127.0.0.1, the files stenographer and stenocurl read."""
    certs.mkdir()
    ssl = ["openssl"]
    _run([*ssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sluice-bench-steno-ca",
          "-keyout", str(certs / "ca_key.pem"), "-out", str(certs / "ca_cert.pem")])
    ext = certs / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for role in ("server", "client"):
        csr = certs / f"{role}.csr"
        _run([*ssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
              "-keyout", str(certs / f"{role}_key.pem"), "-out", str(csr)])
        _run([*ssl, "x509", "-req", "-days", "2", "-in", str(csr), "-CA", str(certs / "ca_cert.pem"),
              "-CAkey", str(certs / "ca_key.pem"), "-CAcreateserial", "-out", str(certs / f"{role}_cert.pem"),
              "-extfile", str(ext)])
    for p in certs.iterdir():
        os.chmod(p, 0o600 if p.name.endswith("_key.pem") else 0o644)
    # the daemon (user stenographer) reads the server key; stenoread runs as root here
    os.chown(certs / "server_key.pem", owner.pw_uid, owner.pw_gid)


def _as_subreaper() -> None:
    """stenotype, orphaned when the daemon is stopped, is then reaped by us, not left a zombie
    under a PID 1 that does not reap (as in these containers)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(sample: Path, queries: list[str], out_dir: Path) -> tuple[list[StenoQuery], dict[str, object]]:
    """Feeds sample (a pcap) to a stenographer of its own and times each stenoread query.
    Returns the query results and facts about the run (replay rate, files, disk use)."""
    for tool in ("stenographer", "stenotype", "stenoread", "stenocurl", "tcpreplay", "openssl", "jq", "setpriv"):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin")):
            raise StenoUnavailable(f"{tool} is not installed (deps/apt/catalog.txt lists its package)")
    try:
        owner = pwd.getpwnam("stenographer")
    except KeyError:
        raise StenoUnavailable("no user stenographer (the Debian package's postinst makes it)") from None
    ns = f"sluice-st-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="sluice-steno.", dir="/var/tmp"))
    daemon: subprocess.Popen[bytes] | None = None
    _as_subreaper()
    try:
        os.chmod(work, 0o755)
        packets, index, stenotmp = work / "packets", work / "index", work / "tmp"
        for d in (packets, index, stenotmp):
            d.mkdir()
            os.chown(d, owner.pw_uid, owner.pw_gid)
        _make_certs(work / "certs", owner)
        config = work / "config"
        config.write_text(json.dumps({
            "Threads": [{"PacketsDirectory": str(packets), "IndexDirectory": str(index),
                         "MaxDirectoryFiles": 30000, "DiskFreePercentage": 1}],
            "StenotypePath": "/usr/sbin/stenotype", "Interface": "cap0", "Port": PORT, "Host": "127.0.0.1",
            "Flags": STENOTYPE_FLAGS, "CertPath": str(work / "certs")}, indent=1))
        os.chmod(config, 0o644)
        netns.add_namespace(ns)
        netns.ip("-n", ns, "link", "add", "feed0", "mtu", "9000", "type", "veth", "peer", "name", "cap0",
                 "mtu", "9000")
        for ifname in ("feed0", "cap0"):
            netns.run_in(ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"])
            netns.ip("-n", ns, "link", "set", ifname, "up")
        log = work / "stenographer.log"
        argv = netns.exec_argv(ns, ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}",
                                    "--init-groups", "/usr/sbin/stenographer", "-config", str(config),
                                    "-syslog=false", "-v", "1"])
        with log.open("wb") as log_out:
            # TMPDIR: the daemon hands stenotype a fresh dir made there (it links PKT0/IDX0 to ours)
            daemon = subprocess.Popen(argv, stdout=log_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env={**os.environ, "TMPDIR": str(stenotmp)})
        _wait_listening(ns, daemon, log, " ".join(argv))
        t0 = time.time()
        replay = netns.run_in(ns, ["tcpreplay", "-i", "feed0", f"--mbps={REPLAY_MBPS}", str(sample)],
                              check=False, timeout=600)
        if replay.returncode != 0:
            raise StenoUnavailable(f"`tcpreplay -i feed0 --mbps={REPLAY_MBPS} {sample}` failed: "
                                   f"{replay.stderr.strip().splitlines()[-1:]}")
        t1 = time.time()
        _wait_indexed(packets, log, t1, daemon)
        env = {**os.environ, "STENOGRAPHER_CONFIG": str(config)}
        results = []
        for i, q in enumerate(queries):
            full = f"{q} and after {_iso(t0 - 2)} and before {_iso(time.time() + 60)}"
            out = out_dir / f"steno-{i}.pcap"
            best = float("inf")
            for _ in range(2):  # best of two, as the bench times sluice extract
                start = time.perf_counter()
                proc = subprocess.run(netns.exec_argv(ns, ["stenoread", full, "-w", str(out)]), env=env,
                                      capture_output=True, text=True, timeout=600)
                best = min(best, time.perf_counter() - start)
                if proc.returncode != 0:
                    raise StenoUnavailable(f"`stenoread '{full}' -w {out}` failed ({proc.returncode}): "
                                           f"{proc.stderr.strip().splitlines()[-1:]}")
            n = int(_run(["capinfos", "-c", "-M", "-T", "-r", str(out)]).stdout.split()[-1])
            results.append(StenoQuery(full, best, n))
        files = [p for p in packets.iterdir() if not p.name.startswith(".")]
        facts: dict[str, object] = {
            "replay_s": t1 - t0, "mbps": REPLAY_MBPS, "files": len(files),
            "packet_bytes": sum(p.stat().st_size for p in files),
            "index_bytes": sum(p.stat().st_size for p in index.iterdir()),
        }
        return results, facts
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
        in_ns: list[int] = []
        if ns in netns.list_namespaces():
            in_ns = netns.pids_in(ns)
            netns.delete_namespace(ns)
        if daemon is not None:
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        _reap(in_ns)
        if os.environ.get("STENO_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


def _log_tail(log: Path) -> str:
    """The daemon's last lines, and stenotype's failed check (the cause when it aborted)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    checks = [ln for ln in lines if "CHECK(" in ln][:1]
    return " | ".join(checks + lines[-2:])


def _wait_listening(ns: str, daemon: subprocess.Popen[bytes], log: Path, command: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise StenoUnavailable(f"`{command}` exited ({daemon.returncode}) on start: {_log_tail(log)}")
        if (f"127.0.0.1:{PORT}" in netns.run_in(ns, ["ss", "-Hltn"]).stdout
                and "starting to process packets" in log.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise StenoUnavailable(f"`{command}` did not listen on 127.0.0.1:{PORT} or its stenotype did not read "
                           f"cap0 within 30 s: {_log_tail(log)}")


def _wait_indexed(packets: Path, log: Path, replay_end: float, daemon: subprocess.Popen[bytes]) -> None:
    """Until stenotype has opened a file after the replay (so every file with sample packets is
    closed) and the daemon has opened each closed file (its log says `new blockfile NAME`)."""
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    end_us = int(replay_end * 1e6)
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise StenoUnavailable(f"stenographer exited ({daemon.returncode}) during the run: {_log_tail(log)}")
        names = [p.name for p in packets.iterdir()]
        closed = [n for n in names if not n.startswith(".")]
        rotated = any(n.startswith(".") and int(n[1:]) > end_us for n in names)
        opened = {ln.rsplit("/", 1)[-1].strip('"') for ln in log.read_text(errors="replace").splitlines()
                  if "new blockfile" in ln}
        if rotated and closed and opened.issuperset(closed):
            return
        time.sleep(0.5)
    raise StenoUnavailable(f"stenographer had not indexed the replay {INDEX_TIMEOUT_S:.0f} s after it: "
                           f"{_log_tail(log)}")


def _reap(pids: list[int]) -> None:
    """Waits for the processes of the namespace that became ours (stenotype, orphaned), up to 10 s."""
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                break  # not ours (or already reaped)
            time.sleep(0.1)
