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


HOSTILE_CONFIGS = {
    "400 digits": "[capture]\nrotate_size = " + "9" * 400 + "\n",
    "nested 5000 deep": "[capture]\nfilter = " + "[" * 5000 + "]" * 5000 + "\n",
    "huge float": "[supervisor]\nstats_interval = 1e400\n",
}


def test_sighup_with_a_config_the_parser_chokes_on_keeps_capturing(traffic_ns, tmp_path: Path) -> None:  # noqa: ANN001
    """OverflowError and RecursionError from the parser used to kill the supervisor on SIGHUP."""
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", traffic_ns.rx, spool, extra="[nic]\ntune = false\n")
    good = cfg.read_text()
    with Supervise(traffic_ns.ns, cfg, spool) as sup:
        assert sup.proc is not None
        writer = sup.state()["writers"][0]["pid"]
        for n, (name, text) in enumerate(HOSTILE_CONFIGS.items(), 1):
            cfg.write_text(text + good)
            sup.proc.send_signal(signal.SIGHUP)
            sup.wait_for(lambda s, n=n: len(list(read_events(spool / "journal.jsonl", "config_reload_failed")))
                         >= n, 10, f"the refused reload of {name}")
            failed = list(read_events(spool / "journal.jsonl", "config_reload_failed"))[-1]
            assert str(cfg) in failed["error"] and "\n" not in failed["error"], failed
        send(traffic_ns, 10)
        state = sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= 10, 10, "capture goes on")
        assert state["writers"][0]["pid"] == writer and pid_alive(writer)
        assert sup.stop() == 0
    assert "Traceback" not in sup.stderr()


def test_every_file_recovered_at_writer_start_is_journaled(traffic_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", traffic_ns.rx, spool, extra="[nic]\ntune = false\n")
    with Supervise(traffic_ns.ns, cfg, spool) as sup:
        send(traffic_ns, 5)
        sup.wait_for(lambda s: s["writers"][0]["totals"]["packets"] >= 5, 10, "packets")
        assert sup.stop() == 0
    closed = next(p for p in spool.rglob("*.pcapng"))
    # What a crash leaves: a .part with whole blocks and a torn tail, and one without a header.
    torn = closed.with_name(closed.name.replace(closed.name.rsplit("_", 1)[1], "000099.pcapng.part"))
    torn.write_bytes(closed.read_bytes() + b"\x06\x00\x00\x00torn")
    empty = closed.with_name(closed.name.replace(closed.name.rsplit("_", 1)[1], "000098.pcapng.part"))
    empty.write_bytes(bytes.fromhex("0a0d0d0a1c000000"))  # a section header block cut short
    with Supervise(traffic_ns.ns, cfg, spool) as sup:
        events = sup.wait_for(lambda s: len(list(read_events(spool / "journal.jsonl", "file_recovered"))) >= 2,
                              10, "recoveries journaled") and list(read_events(spool / "journal.jsonl",
                                                                                  "file_recovered"))
        assert sup.stop() == 0
    by_part = {Path(e["part"]).name: e for e in events}
    assert by_part[torn.name]["path"] == str(torn.with_suffix("")) and by_part[torn.name]["cut_bytes"] == 8
    assert by_part[empty.name]["path"] is None
    assert all(e["interface"] == traffic_ns.rx for e in events)


def test_systemd_notify_ready_after_the_first_stats_watchdog_and_stopping(traffic_ns, tmp_path: Path,  # noqa: ANN001
                                                                         monkeypatch) -> None:  # noqa: ANN001
    """Type=notify as systemd runs it: a datagram socket named by $NOTIFY_SOCKET receives READY=1
    only once the writer sent a stats line, WATCHDOG=1 every WatchdogSec/2, STOPPING=1 at the end."""
    import socket
    import time

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = tmp_path / "notify.sock"
    listener.bind(str(address))
    listener.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(address))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1: a ping every 0.5 s
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", traffic_ns.rx, spool, extra="[nic]\ntune = false\n")
    messages: list[tuple[float, str]] = []
    try:
        sup = Supervise(traffic_ns.ns, cfg, spool).start(wait_up=False)
        while not any("READY=1" in m for _, m in messages):
            messages.append((time.monotonic(), listener.recv(4096).decode()))
        ready_wall = time.time()
        ready_at = next(t for t, m in messages if "READY=1" in m)
        state = sup.wait_for(lambda s: s["writers"][0]["last_stats_at"] is not None, 5, "the first stats line")
        assert state["writers"][0]["last_stats_at"] <= ready_wall, "READY=1 before the first stats line"
        assert "STATUS=capturing on rx0" in next(m for _, m in messages if "READY=1" in m)
        while time.monotonic() < ready_at + 2.2:
            messages.append((time.monotonic(), listener.recv(4096).decode()))
        pings = [t for t, m in messages if m == "WATCHDOG=1" and t >= ready_at]
        assert len(pings) >= 3, messages
        assert sup.stop() == 0
        listener.settimeout(1)
        rest = []
        try:
            while True:
                rest.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        assert any(m.startswith("STOPPING=1") for m in rest), rest
    finally:
        listener.close()
        if "sup" in locals():
            sup.__exit__()
