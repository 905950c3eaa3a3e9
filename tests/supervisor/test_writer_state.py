"""What the supervisor makes of a writer's stats lines: carried counters, rates, stall rules.

The lines are shaped as native/README.md specifies (schema v1); the integration tests feed the
real sluice-capture's lines through the same code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from appliance import config
from appliance.writer import WriterProcess

# A real line of sluice-capture's stats channel (tests/fixtures/README.md), varied per test.
RECORDED = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "sluice-capture" /
                       "channel.jsonl").read_text().splitlines()[0])


def stats(packets: int, written: int, fill: float = 0.0, **kw: object) -> dict:
    return {**RECORDED, "ts": time.time(), "interface": "c0", "packets": packets, "bytes": packets * 100,
            "kernel_drops": kw.get("kernel_drops", 0), "writer_drops": kw.get("writer_drops", 0),
            "buffer_fill": fill, "bytes_written": written, "disk_error": kw.get("disk_error")}


class FakeClock:
    """The writer's monotonic clock, moved by the test: seconds of stats lines take none."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def writer(tmp_path: Path, stall: str = "3", clock: FakeClock | None = None) -> WriterProcess:
    cfg = config.loads(f'[capture]\ninterfaces = ["c0"]\nspool = "{tmp_path}"\n'
                       f"[supervisor]\nstats_interval = 0.05\nstall_timeout = {stall}\n", "t")
    return WriterProcess(cfg, "c0", "/nonexistent", clock=clock or FakeClock())


def test_packets_in_nothing_written_with_full_buffers_is_a_stall(tmp_path: Path) -> None:
    clock = FakeClock()
    w = writer(tmp_path, stall="0.5", clock=clock)
    w.handle_record(stats(100, 4096, 0.1))
    packets = 100
    for _line in range(16):  # 0.8 s of stats lines: packets in, nothing written, buffers full
        packets += 100
        w.handle_record(stats(packets, 4096, 0.9))
        clock.now += 0.05
    assert w.stall_check(w.last_stats_mono) is not None
    assert "packets arriving but nothing written for" in w.stall_check(w.last_stats_mono)
    w.handle_record(stats(packets + 100, 8192, 0.5))  # it wrote again
    assert w.stall_check(w.last_stats_mono) is None


def test_quiet_link_with_empty_buffers_is_not_a_stall(tmp_path: Path) -> None:
    w = writer(tmp_path)
    for i in range(10):
        w.handle_record(stats(10 + i, 4096, 0.0))  # a trickle that still sits in the open block
    assert w.stall_check(w.last_stats_mono + 2.9) is None


def test_silence_is_a_stall(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.handle_record(stats(10, 4096))
    assert w.stall_check(w.last_stats_mono + 2.0) is None
    assert w.stall_check(w.last_stats_mono + 3.5) == "no stats for 3.5s"


def test_drop_ratio_and_rates_per_interval(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.handle_record(stats(1000, 0))
    w.handle_record(stats(1900, 0, kernel_drops=100, writer_drops=50))
    assert w.state().drop_ratio == 0.0  # not running: no current ratio is claimed
    assert w.totals()["kernel_drops"] == 100 and w.totals()["packets"] == 1900
    # While a process runs (a stand-in that only waits), the ratio of the last interval shows.
    stand_in = tmp_path / "writer.sh"
    stand_in.write_text("#!/bin/sh\nexec sleep 30\n")
    stand_in.chmod(0o755)
    w.binary = str(stand_in)
    w.start()
    try:
        w.handle_record(stats(1000, 0))
        w.handle_record(stats(1900, 0, kernel_drops=100, writer_drops=50))
        # 150 drops / (900 received + 100 dropped by the kernel)
        assert w.state().drop_ratio == 150 / 1000
    finally:
        w.stop(5)


def test_writer_log_lines_keep_their_level() -> None:
    import logging

    from appliance.writer import writer_log_level
    assert writer_log_level("sluice-capture: error: interface rx0 disappeared") == (logging.ERROR,
                                                                                     "interface rx0 disappeared")
    assert writer_log_level("sluice-capture: warning: io_uring unavailable") == (logging.WARNING,
                                                                                  "io_uring unavailable")
    assert writer_log_level("sluice-capture: recover x: a running writer holds it") == (
        logging.INFO, "recover x: a running writer holds it")


def test_worker_cpus_resolve() -> None:
    from appliance.writer import resolve_worker_cpus
    assert resolve_worker_cpus("auto", [2, 3], 1) == [2]
    assert resolve_worker_cpus("auto", [2], 2) is None  # fewer IRQ CPUs than workers: not pinned
    assert resolve_worker_cpus("auto", None, 1) is None  # not tuned
    assert resolve_worker_cpus([5, 4], [2, 3], 2) == [5, 4] and resolve_worker_cpus([], [2], 1) is None
