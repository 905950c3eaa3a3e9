"""Stall detection, SIGHUP reload and SIGTERM with the real sluice-capture on a veth pair."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from appliance.journal import read_events
from tests.conftest import SLUICE_CAPTURE
from tests.supervisor.running import Supervise, pid_alive, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture
def traffic_ns(veth_ns):  # noqa: ANN001, ANN201
    """veth_ns whose tx0 can send echo requests to a static neighbour: frames arrive on rx0."""
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    veth_ns.run(["ip", "addr", "add", "192.0.2.1/24", "dev", veth_ns.tx])
    veth_ns.run(["ip", "neigh", "add", "192.0.2.99", "lladdr", "02:00:00:00:00:99", "dev", veth_ns.tx])
    return veth_ns


def send(ns, count: int) -> None:  # noqa: ANN001
    ns.run(["ping", "-c", str(count), "-i", "0.01", "-W", "0.1", "192.0.2.99"], check=False)


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_a_frozen_writer_is_restarted_as_stalled(traffic_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", traffic_ns.rx, spool, extra="[nic]\ntune = false\n")
    cfg.write_text(cfg.read_text().replace("stall_timeout = 5", "stall_timeout = 2")
                   .replace("stop_timeout = 10", "stop_timeout = 1"))
    with Supervise(traffic_ns.ns, cfg, spool) as sup:
        send(traffic_ns, 20)
        before = sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= 20, 10, "packets")
        old = before["writers"][0]["pid"]
        subprocess.run(["kill", "-STOP", str(old)], check=True)  # alive, but silent: a hung writer
        after = sup.wait_for(lambda s: s["writers"][0]["up"] and s["writers"][0]["pid"] != old, 15,
                             "a new writer after the stall")
        assert not pid_alive(old)
        assert after["writers"][0]["restarts"] == 1
        assert after["writers"][0]["totals"]["packets"] >= before["writers"][0]["totals"]["packets"]
        exits = list(read_events(spool / "journal.jsonl", "writer_exit"))
        assert exits and exits[-1]["reason"].startswith("stalled: no stats for")
        assert "killed after 1s" in (sup.stderr()) or exits[-1]["returncode"] == -9


def test_sighup_reloads_the_config(traffic_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", traffic_ns.rx, spool, extra="[nic]\ntune = false\n")
    good = cfg.read_text()
    with Supervise(traffic_ns.ns, cfg, spool) as sup:
        first = sup.state()["writers"][0]["pid"]
        assert "--filter" not in cmdline(first)
        # A writer setting changed: the writer restarts with the new flags.
        cfg.write_text(good.replace("[capture]\n", '[capture]\nfilter = "icmp"\nrotate_size = "8M"\n', 1))
        assert sup.proc is not None
        sup.proc.send_signal(signal.SIGHUP)
        state = sup.wait_for(lambda s: s["writers"][0]["up"] and s["writers"][0]["pid"] != first, 15,
                             "the writer restarted with the new config")
        second = state["writers"][0]["pid"]
        argv = cmdline(second)
        assert argv[argv.index("--filter") + 1] == "icmp"
        assert argv[argv.index("--rotate-size") + 1] == "8M"
        reloads = list(read_events(spool / "journal.jsonl", "config_reload"))
        assert reloads and {"capture.filter", "capture.rotate_size"} <= set(reloads[-1]["changed"])
        # A bad file: journaled, the running config and writer stay.
        cfg.write_text(good.replace("[capture]\n", "[capture]\nworkers = 0\n", 1))
        sup.proc.send_signal(signal.SIGHUP)
        sup.wait_for(lambda s: list(read_events(spool / "journal.jsonl", "config_reload_failed")), 10,
                     "the failed reload")
        failed = list(read_events(spool / "journal.jsonl", "config_reload_failed"))[-1]
        assert "[capture] workers = 0" in failed["error"]
        # An interface that is not there: refused the same way (the running writers stay).
        rx = traffic_ns.rx
        cfg.write_text(good.replace(f'interfaces = ["{rx}"]', f'interfaces = ["{rx}", "nosuch0"]'))
        sup.proc.send_signal(signal.SIGHUP)
        sup.wait_for(lambda s: len(list(read_events(spool / "journal.jsonl", "config_reload_failed"))) >= 2, 10,
                     "the refused interface")
        failed = list(read_events(spool / "journal.jsonl", "config_reload_failed"))[-1]
        assert "interface nosuch0: no such interface" in failed["error"]
        send(traffic_ns, 10)
        state = sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= 10, 10, "capture goes on")
        assert state["writers"][0]["pid"] == second and pid_alive(second)
        # A watchdog setting: applied without touching the writer.
        cfg.write_text(good.replace("span_dead_seconds = 5", "span_dead_seconds = 7")
                       .replace("[capture]\n", '[capture]\nfilter = "icmp"\nrotate_size = "8M"\n', 1))
        sup.proc.send_signal(signal.SIGHUP)
        sup.wait_for(lambda s: len(list(read_events(spool / "journal.jsonl", "config_reload"))) >= 2, 10,
                     "the second reload")
        assert list(read_events(spool / "journal.jsonl", "config_reload"))[-1]["changed"] == \
            ["watchdogs.span_dead_seconds"]
        assert sup.state()["writers"][0]["pid"] == second
        assert sup.stop() == 0
    assert not list(spool.rglob("*.part"))
