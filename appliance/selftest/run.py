"""The self-test from start to end: refuse beside a live capture, build the rig, measure the
spool's write rate, find the lossless ceiling for each frame size with the box's own capture
config, judge each capture link, record the result (journal, SPOOL/selftest.json), and remove
everything it made: also on Ctrl-C, SIGTERM or a failure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.config import Config
from appliance.errors import SluiceError
from appliance.journal import Journal
from appliance.selftest import disk as disk_mod
from appliance.selftest import report, rig
from appliance.selftest.capture import Capture
from appliance.selftest.ramp import Step, find_ceiling
from appliance.watchdogs.disk import statvfs

log = logging.getLogger("sluice.selftest")

WORK_PREFIX = ".selftest-"  # a dot directory: the disk watchdog and retention skip it
DISK_TEST_MAX = 4 * 2**30


@dataclass
class Options:
    interfaces: list[str] = field(default_factory=list)  # links to judge; empty: the configured ones
    seconds: float = 3.0
    disk_seconds: float = 3.0
    sizes: list[int] = field(default_factory=lambda: [64, 1518])
    steps: int = 5
    refine: int = 2
    link_speed: int | None = None  # bit/s, instead of what the interfaces report
    force: bool = False
    generator_cpus: list[int] = field(default_factory=lambda: [0])


def parse_rate(text: str) -> int:
    """'10G', '1000M', '100k' or a number: bits per second."""
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    t = text.strip().upper().removesuffix("BIT/S").removesuffix("BPS")
    unit = t[-1:] if t[-1:] in units else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise SluiceError(f"link speed {text!r} is not allowed (allowed: a rate such as 10G, 1000M or 100k)",
                          2) from None
    if value <= 0:
        raise SluiceError(f"link speed {text!r} is not allowed (allowed: a positive rate such as 10G)", 2)
    return int(value * units[unit])


def capturing_supervisor(cfg: Config) -> str | None:
    """A description of the supervisor capturing on this spool, or None. It counts as capturing
    when its status file is fresh, its pid is a live `sluice supervise` and a writer runs."""
    try:
        state = json.loads(cfg.state_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    pid = state.get("pid")
    age = time.time() - float(state.get("ts", 0))
    if not isinstance(pid, int) or age > max(10.0, 3 * cfg.get("supervisor", "state_interval")):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"supervise" not in cmdline:
        return None
    running = [w["interface"] for w in state.get("writers", []) if w.get("running")]
    if not running:
        return None
    return f"sluice supervise (pid {pid}) is capturing on {', '.join(running)}"


def link_speeds(cfg: Config, opts: Options) -> dict[str, int]:
    names = opts.interfaces or cfg.interfaces
    speeds = {}
    for ifname in names:
        base = Path("/sys/class/net", ifname)
        if not base.is_dir():
            raise SluiceError(f"interface {ifname}: no such interface (in this network namespace)", 2)
        if opts.link_speed is not None:
            speeds[ifname] = opts.link_speed
            continue
        try:
            mbit = int((base / "speed").read_text().strip())
        except (OSError, ValueError):
            mbit = -1
        speeds[ifname] = mbit * 10**6 if mbit > 0 else 0
    return speeds


def remove_stale_work(spool: Path) -> None:
    for p in spool.glob(f"{WORK_PREFIX}*"):
        pid = p.name.removeprefix(WORK_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(p, ignore_errors=True)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so the same cleanup runs as for Ctrl-C."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_signum: int, _frame: object) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _mib(value: int | str) -> str:
    return f"{value} MiB" if isinstance(value, int) else str(value)


def _buffer_bytes(cfg: Config) -> int:
    """The writer's staging buffers: as configured, or its "auto" size (RAM/16, 64..4096 MiB,
    native/README.md)."""
    value = cfg.get("capture", "buffer_mb")
    if isinstance(value, int):
        return value * 2**20
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(max(ram // 16, 64 * 2**20), 4096 * 2**20)


def _space_check(cfg: Config, work: Path) -> int:
    """Bytes the disk test may write; refuses when the spool cannot hold the test above its floor."""
    free, size, _inodes, read_only = statvfs(cfg.spool)
    if read_only:
        raise SluiceError(f"spool {cfg.spool}: filesystem is read-only", 1)
    floor = cfg.get("retention", "min_free").bytes_for(size)
    # At most one open capture file (closed ones are deleted at once) plus the writer's buffers.
    need = cfg.get("capture", "rotate_size") + _buffer_bytes(cfg) + 256 * 2**20
    room = free - floor
    if room < need:
        raise SluiceError(f"spool {cfg.spool}: {room // 2**20} MiB free above the free-space floor, the self-test "
                          f"needs {need // 2**20} MiB (one rotate_size file and the buffers)", 1)
    return max(disk_mod.BLOCK, min(DISK_TEST_MAX, room - need))


def run_selftest(cfg: Config, opts: Options, progress: Any = None) -> dict[str, Any]:
    """Runs the whole self-test and returns the result document (report.py)."""
    say = progress or (lambda text: None)
    busy = capturing_supervisor(cfg)
    if busy and not opts.force:
        raise SluiceError(f"{busy}: the self-test would compete with it for CPU and disk "
                          "(stop it first, or pass --force)", 1)
    links = link_speeds(cfg, opts)
    for size in opts.sizes:
        rig.trafgen_frame(size)  # bad sizes fail before anything is built
    if not cfg.spool.is_dir():
        raise SluiceError(f"spool {cfg.spool}: no such directory", 2)
    rig.remove_stale()
    remove_stale_work(cfg.spool)
    work = cfg.spool / f"{WORK_PREFIX}{os.getpid()}"
    started = time.time()
    with _sigterm_as_interrupt():
        try:
            work.mkdir()
            disk_max = _space_check(cfg, work)
            say(f"spool {cfg.spool}: measuring the sustained write rate ({opts.disk_seconds:g} s)")
            rate = disk_mod.measure(work, opts.disk_seconds, disk_max)
            ceilings = []
            with rig.Rig(cpus=opts.generator_cpus) as bench:
                cap = Capture(cfg, bench.ns, rig.RX_IF, work)
                try:
                    cap.start()
                    for size in opts.sizes:
                        def show(s: Step, size: int = size) -> None:
                            target = "full speed" if s.target_pps is None else f"{s.target_pps:.0f} pps"
                            say(f"{size} B at {target}: {s.pps:.0f} pps sent, {s.lost} lost "
                                f"(ring {s.ring_drops}, writer {s.writer_drops}, backlog {s.backlog_drops}), "
                                f"buffers up to {s.peak_buffer_fill:.0%} full")
                        ceilings.append(find_ceiling(bench, cap, size, opts.seconds, opts.steps, opts.refine,
                                                     rate.bytes_per_second, show).to_dict())
                finally:
                    cap.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return build_result(cfg, opts, links, ceilings, rate, started, bool(busy))


def build_result(cfg: Config, opts: Options, links: dict[str, int], ceilings: list[dict[str, Any]],
                 rate: disk_mod.DiskRate, started: float, forced: bool) -> dict[str, Any]:
    _free, size, _inodes, _ro = statvfs(cfg.spool)
    usable = max(0, size - cfg.get("retention", "min_free").bytes_for(size))
    total_bits = sum(links.values())
    cap = cfg.sections["capture"]
    verdicts = report.verdicts(ceilings, links)
    return {
        "version": report.RESULT_VERSION,
        "sluice": __version__,
        "ts": time.time(),
        "started": started,
        "host": cfg.host or socket.gethostname(),
        "config": cfg.source,
        "spool": str(cfg.spool),
        "capture": (f"workers {cap['workers']}, ring {_mib(cap['ring_mb'])}, buffers {_mib(cap['buffer_mb'])}"
                    + (f" ({_buffer_bytes(cfg) >> 20} MiB)" if cap["buffer_mb"] == "auto" else "")
                    + f", {cap['format']}, compression {cap['compression']}"),
        "seconds_per_step": opts.seconds,
        "forced": forced,
        "load_average": list(os.getloadavg()),
        "ceilings": ceilings,
        "disk": {"bytes_per_second": rate.bytes_per_second, "bytes_written": rate.bytes_written,
                 "seconds": rate.seconds, "direct": rate.direct},
        "retention": {"usable_bytes": usable, "link_bits_per_second": total_bits,
                      "hours_at_link_rate": usable / (total_bits / 8) / 3600 if total_bits else None},
        "verdicts": verdicts,
        "keeps_up": bool(verdicts) and all(v["keeps_up"] for v in verdicts),
    }


def record(cfg: Config, result: dict[str, Any]) -> None:
    """The journal event and SPOOL/selftest.json (which the supervisor exports as metrics)."""
    report.write_result(cfg.spool, result)
    with Journal(cfg.journal_path) as journal:
        journal.append("selftest", keeps_up=result["keeps_up"], forced=result["forced"],
                       ceilings={str(c["frame_bytes"]): {"packets_per_second": c["lossless_packets_per_second"],
                                                         "bits_per_second": c["lossless_bits_per_second"],
                                                         "limit": c["limit"]} for c in result["ceilings"]},
                       disk_bytes_per_second=round(result["disk"]["bytes_per_second"]),
                       verdicts=[v["text"] for v in result["verdicts"]])


def parse_cpus(text: str) -> list[int]:
    """'0', '0,2' or '0-3' -> CPU numbers; '' -> [] (unpinned). Each must be online here."""
    cpus: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            cpus += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        cpus = [-1]
    online = os.sched_getaffinity(0)
    if any(c not in online for c in cpus):
        raise SluiceError(f"--generator-cpus {text!r} is not allowed (allowed: CPUs of this machine such as 0 or "
                          f"0-3; online: {','.join(map(str, sorted(online)))})", 2)
    return sorted(set(cpus))


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SluiceError(f"--sizes {text!r} is not allowed (allowed: frame sizes such as 64,1518)", 2) from None
    if not sizes:
        raise SluiceError("--sizes is empty (allowed: frame sizes such as 64,1518)", 2)
    for s in sizes:
        rig.trafgen_frame(s)
    return sizes

