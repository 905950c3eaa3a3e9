"""`sluice supervise` on a lab's SPAN port with the real sluice-capture and real traffic."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.journal import read_events
from appliance.lab import traffic
from tests.conftest import SLUICE_CAPTURE, require_tool
from tests.supervisor.running import Supervise, capture_files, pid_alive, sample, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture(autouse=True)
def _capture_binary() -> None:
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")


def capinfos_packets(path: Path) -> int:
    proc = subprocess.run([require_tool("capinfos"), "-c", "-M", "-T", "-r", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"capinfos cannot read {path}: {proc.stderr}"
    return int(proc.stdout.strip().split("\t")[-1])


def test_counters_grow_survive_kill9_and_sigterm_leaves_whole_files(lab, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool,
                       extra='[nic]\ntune = false\n', )
    sup = Supervise(lab.capture_ns, cfg, spool)
    with sup:
        iface = lab.capture_if
        assert traffic.ping(lab, "h1", "h2", 20, interval=0.02) == 20
        traffic.http_get(lab, "h2", "h1")
        sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= 80, 10, "packets counted")
        m1 = sup.metrics()
        packets1 = sample(m1, "sluice_capture_packets_total", interface=iface)
        assert packets1 >= 80  # 20 echo requests + 20 replies, each seen twice on the SPAN port, + HTTP
        assert sample(m1, "sluice_writer_up", interface=iface) == 1
        assert sample(m1, "sluice_nic_link_up", interface=iface) == 1
        assert sample(m1, "sluice_build_info", version=sup.state()["version"]) == 1

        traffic.ping(lab, "h1", "h2", 20, interval=0.02)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= packets1 + 80, 10, "more packets")
        m2 = sup.metrics()
        packets2 = sample(m2, "sluice_capture_packets_total", interface=iface)
        assert packets2 >= packets1 + 80
        assert sample(m2, "sluice_capture_bytes_total", interface=iface) > \
            sample(m1, "sluice_capture_bytes_total", interface=iface)

        # kill -9 the writer: back within 10 s, restarts rose, counters did not go backwards.
        old_pid = sup.state()["writers"][0]["pid"]
        killed_at = time.monotonic()
        subprocess.run(["kill", "-9", str(old_pid)], check=True)
        state = sup.wait_for(lambda s: s["writers"][0]["up"] and s["writers"][0]["pid"] not in (None, old_pid),
                             10, "writer back after kill -9")
        assert time.monotonic() - killed_at < 10
        assert not pid_alive(old_pid)
        m3 = sup.metrics()
        assert sample(m3, "sluice_writer_restarts_total", interface=iface) == \
            sample(m2, "sluice_writer_restarts_total", interface=iface) + 1
        for name in ("sluice_capture_packets_total", "sluice_capture_bytes_total",
                     "sluice_capture_bytes_written_total", "sluice_writer_files_closed_total"):
            assert sample(m3, name, interface=iface) >= sample(m2, name, interface=iface), name
        traffic.ping(lab, "h1", "h2", 20, interval=0.02)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= packets2 + 80, 10, "packets after restart")
        restarts = list(read_events(spool / "journal.jsonl", "writer_restart"))
        assert restarts and "SIGKILL" in restarts[-1]["reason"]
        assert state["writers"][0]["restarts"] == 1

        # SIGTERM: the writers close their files, the supervisor exits 0, only whole files remain.
        assert sup.stop() == 0
    files = capture_files(spool)
    assert files, "no capture file written"
    assert not [f for f in files if f.name.endswith(".part")]
    # The killed writer's .part was closed by its successor (sluice-capture recovers its own
    # prefix at start); every file, that one too, is whole and readable. Packets still in the
    # killed writer's buffers are lost, so only a lower bound holds across the two runs.
    total = sum(capinfos_packets(f) for f in files)
    assert total >= 80
    events = [e["event"] for e in read_events(spool / "journal.jsonl")]
    assert events[0] == "supervisor_start" and events[-1] == "supervisor_stop"
    assert "writer_stop" in events and "file_closed" in events


def test_status_command_shows_the_box(lab, tmp_path: Path) -> None:  # noqa: ANN001
    """With the default [nic] tune = true: the SPAN port is tuned (appliance.nic) before capture."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool)
    with Supervise(lab.capture_ns, cfg, spool) as sup:
        tuned = list(read_events(spool / "journal.jsonl", "nic_tuned"))
        assert tuned and tuned[0]["interface"] == lab.capture_if and tuned[0]["report"]["ok"], tuned
        promisc = lab.exec(lab.capture_ns, ["cat", f"/sys/class/net/{lab.capture_if}/flags"]).stdout
        assert int(promisc, 16) & 0x100  # IFF_PROMISC, set by the capture profile
        traffic.ping(lab, "h1", "h2", 10, interval=0.02)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= 40 and s["watchdogs"].get("nic"), 10, "packets")
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--config", str(cfg)],
                              capture_output=True, text=True, cwd=Path(__file__).parents[2])
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert re.search(rf"{lab.capture_if}\s+up\s+pid \d+", out), out
        assert f"nic: {lab.capture_if} link up" in out
        assert "disk: " in out and "time: " in out and "raid: no md arrays" in out
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--state", str(spool / "status.json")],
                          capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert "WARNING" not in proc.stdout  # just stopped: the final status is fresh
    assert re.search(rf"{lab.capture_if}\s+DOWN", proc.stdout), proc.stdout


def test_bad_filter_stops_with_the_writers_line(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool,
                       extra="[nic]\ntune = false\n").read_text()
    cfg = cfg.replace("[capture]\n", '[capture]\nfilter = "tcp port nonsense and ("\n', 1)
    (tmp_path / "sluice.toml").write_text(cfg)
    sup = Supervise(veth_ns.ns, tmp_path / "sluice.toml", spool).start(wait_up=False)
    assert sup.proc is not None
    assert sup.proc.wait(20) == 2
    lines = [ln for ln in sup.stderr().splitlines() if "writer " + veth_ns.rx + ":" in ln]
    assert lines and "Traceback" not in sup.stderr(), sup.stderr()


def test_missing_interface_is_one_line(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", "nosuch0", spool)
    sup = Supervise(veth_ns.ns, cfg, spool).start(wait_up=False)
    assert sup.proc is not None and sup.proc.wait(20) == 2
    err = sup.stderr().strip()
    assert err == "sluice: interface nosuch0: no such interface (in this network namespace)", err


def test_sigterm_while_traffic_flows(lab, tmp_path: Path) -> None:  # noqa: ANN001
    """Stop in the middle of an iperf3 transfer: every file left is whole and readable."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool,
                       extra="[nic]\ntune = false\n").read_text().replace("host = \"lab\"", "host = \"lab\"\n"
                                                                          "rotate_size = \"2M\"")
    (tmp_path / "sluice.toml").write_text(cfg)
    sup = Supervise(lab.capture_ns, tmp_path / "sluice.toml", spool).start()
    try:
        iperf = subprocess.Popen(lab.argv(lab.host("h2").ns, ["iperf3", "-c", lab.host("h1").ipv4, "-t", "4",
                                                              "-b", "100M"]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["files_closed"] >= 2, 15, "files rotating")
        sup.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert sup.proc.wait(30) == 0  # type: ignore[union-attr]
        iperf.wait(30)
    finally:
        sup.stop()
    files = capture_files(spool)
    assert len(files) >= 3 and not [f for f in files if f.name.endswith(".part")]
    counted = sum(capinfos_packets(f) for f in files)
    final = list(read_events(spool / "journal.jsonl", "writer_final"))[-1]
    assert counted == final["packets"] - final["writer_drops"]


def test_kernel_drops_are_counted_and_journaled(lab, tmp_path: Path) -> None:  # noqa: ANN001
    """Freeze the writer while trafgen floods: its ring overflows, the kernel drops, we count it."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", lab.capture_if, spool, extra="[nic]\ntune = false\n")
    with Supervise(lab.capture_ns, cfg, spool) as sup:
        pid = sup.state()["writers"][0]["pid"]
        rx_before = lab.exec(lab.capture_ns, ["cat", f"/sys/class/net/{lab.capture_if}/statistics/rx_packets"])
        subprocess.run(["kill", "-STOP", str(pid)], check=True)
        try:
            traffic.flood(lab, "h1", "h2", count=30_000, size=1442)  # 2 x 43 MB into an 8 MiB ring
        finally:
            subprocess.run(["kill", "-CONT", str(pid)], check=True)
        rx_after = lab.exec(lab.capture_ns, ["cat", f"/sys/class/net/{lab.capture_if}/statistics/rx_packets"])
        arrived = int(rx_after.stdout) - int(rx_before.stdout)
        state = sup.wait_for(lambda s: s["writers"][0]["totals"]["kernel_drops"] > 0
                             and s["writers"][0]["totals"]["packets"] + s["writers"][0]["totals"]["kernel_drops"]
                             >= 0.9 * arrived, 15, "kernel drops counted")
        totals = state["writers"][0]["totals"]
        assert totals["kernel_drops"] > arrived // 2  # most of the flood could not fit
        assert state["writers"][0]["restarts"] == 0  # a short freeze is not a stall
        m = sup.metrics()
        assert sample(m, "sluice_capture_kernel_drops_total", interface=lab.capture_if) >= totals["kernel_drops"]
        sup.wait_for(lambda s: list(read_events(spool / "journal.jsonl", "drops")), 10, "a drops journal event")
        event = list(read_events(spool / "journal.jsonl", "drops"))[0]
        assert event["kernel_drops"] > 0 and event["interface"] == lab.capture_if
