"""`sluice selftest` for real: trafgen into a veth of its own, the box's capture config, the
spool's disk; it finds a ceiling, judges the links, records the result, leaves nothing behind,
and refuses to run beside a live capture. Short ramps (--seconds 1, few steps) keep each test
well under a minute; floods are short on purpose (the machine is shared)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.journal import read_events
from appliance.lab import netns
from appliance.selftest.rig import NS_PREFIX
from tests.conftest import REPO, SLUICE_CAPTURE, VethNs
from tests.supervisor.running import FAST, Supervise, sample, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]

# The box's config as a slow writer: zstd in the writer thread and 16 MiB of buffers. Its
# ceiling at 1518 B lies well inside what trafgen reaches here, so the ramp finds a first loss.
# The "auto" ring and buffers would lock RAM/64 + RAM/16 for each test: small fixed sizes instead.
SMALL = "ring_mb = 16\nbuffer_mb = 32\n"
SLOW_WRITER = 'compression = "zstd:6"\nbuffer_mb = 16\nring_mb = 8\nrotate_size = "64M"\n'


def selftest_argv(ns: str, config: Path, *args: str) -> list[str]:
    return netns.exec_argv(ns, [sys.executable, "-m", "appliance.cli", "selftest", "--config", str(config), *args])


def run_selftest(ns: str, config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(selftest_argv(ns, config, *args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def selftest_namespaces() -> list[str]:
    return [n for n in netns.list_namespaces() if n.startswith(NS_PREFIX)]


def links_in(ns: str) -> list[str]:
    return sorted(line.split()[0].split("@")[0] for line in netns.ip("-n", ns, "-br", "link").stdout.splitlines())


def assert_nothing_left(ns: str, links_before: list[str], spool: Path) -> None:
    assert selftest_namespaces() == []
    assert links_in(ns) == links_before
    assert not list(spool.glob(".selftest-*")), list(spool.iterdir())
    assert not [p for p in spool.rglob("*") if ".pcap" in p.name], "capture files left in the spool"


def box_config(path: Path, interface: str, spool: Path, capture_extra: str = "") -> Path:
    """A box's config: its capture interface, spool and capture settings, test-friendly intervals."""
    path.write_text(f'[capture]\ninterfaces = ["{interface}"]\nspool = "{spool}"\nhost = "box"\n'
                    f'binary = "{SLUICE_CAPTURE}"\n{capture_extra}'
                    '[metrics]\nlisten = "127.0.0.1:0"\n[retention]\nmin_free = "1G"\n' + FAST)
    return path


def test_finds_a_ceiling_in_the_lab_records_it_and_cleans_up(lab, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    spool.mkdir()
    config = box_config(tmp_path / "sluice.toml", lab.capture_if, spool, SLOW_WRITER)
    before = links_in(lab.capture_ns)
    proc = run_selftest(lab.capture_ns, config, "--json", "--seconds", "1", "--disk-seconds", "0.3",
                        "--sizes", "1518", "--steps", "2", "--refine", "3")
    # span0 is a veth: it reports 10 Gbit/s, far above what this box keeps with a slow writer.
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    (ceiling,) = result["ceilings"]
    steps = ceiling["steps"]
    assert steps[0]["target_pps"] is None and steps[0]["lost"] > 0, steps[0]  # full speed loses
    assert ceiling["first_loss_packets_per_second"] is not None
    assert ceiling["limit"] in ("writer buffers", "disk", "kernel ring"), ceiling
    for s in steps:  # every frame sent is accounted for: captured, or lost at a named stage
        assert s["sent"] == s["captured"] + s["lost"], s
        assert s["lost"] == s["ring_drops"] + s["writer_drops"] + s["backlog_drops"], s
    lossless = [s for s in steps if s["lossless"]]
    assert lossless, f"no lossless step: {steps}"
    # Lossless: nothing lost, and the writer's buffers never half full (that rate can go on).
    assert all(s["lost"] == 0 and s["peak_buffer_fill"] < 0.5 for s in lossless)
    best = max(lossless, key=lambda s: s["pps"])
    assert ceiling["lossless_packets_per_second"] == pytest.approx(best["pps"], abs=0.1)
    assert ceiling["lossless_bits_per_second"] == pytest.approx(best["pps"] * (1518 + 20) * 8, rel=1e-3)
    assert ceiling["cpu_ns_per_packet"] > 0
    assert result["disk"]["bytes_per_second"] > 0 and result["disk"]["bytes_written"] >= 4 * 2**20
    (verdict,) = result["verdicts"]
    assert verdict["interface"] == "span0" and verdict["link_bits_per_second"] == 10**10
    assert not verdict["keeps_up"] and "at full load it will drop" in verdict["text"]
    assert result["retention"]["hours_at_link_rate"] > 0
    # Recorded: the result file the supervisor exports, and the journal.
    assert json.loads((spool / "selftest.json").read_text()) == result
    (event,) = list(read_events(spool / "journal.jsonl", "selftest"))
    assert event["keeps_up"] is False and event["ceilings"]["1518"]["limit"] == ceiling["limit"]
    assert_nothing_left(lab.capture_ns, before, spool)


def test_keeps_up_with_a_slow_link_exports_it_and_refuses_beside_a_live_capture(veth_ns: VethNs,
                                                                                 tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    config = box_config(tmp_path / "sluice.toml", veth_ns.rx, spool, SMALL)
    before = links_in(veth_ns.ns)
    ok = run_selftest(veth_ns.ns, config, "--seconds", "0.5", "--disk-seconds", "0.2", "--sizes", "64", "--steps", "1",
                      "--refine", "0",
                      "--link-speed", "1M")
    assert ok.returncode == 0, ok.stderr
    assert "rx0 is 1.0 Mbit/s; at 64 B this box keeps" in ok.stdout and ": it keeps up" in ok.stdout
    assert_nothing_left(veth_ns.ns, before, spool)
    result = json.loads((spool / "selftest.json").read_text())

    with Supervise(veth_ns.ns, config, spool) as sup:
        # The supervisor exports the last result as sluice_selftest_* metrics.
        metrics = sup.metrics()
        assert sample(metrics, "sluice_selftest_keeps_up", interface="rx0") == 1.0
        assert sample(metrics, "sluice_selftest_link_bits_per_second", interface="rx0") == 1e6
        assert sample(metrics, "sluice_selftest_lossless_packets_per_second", frame_bytes="64") == \
            result["ceilings"][0]["lossless_packets_per_second"]
        assert sample(metrics, "sluice_selftest_timestamp_seconds") == result["ts"]
        pid = sup.proc.pid if sup.proc else 0
        refused = run_selftest(veth_ns.ns, config, "--seconds", "0.5", "--sizes", "64", "--link-speed", "1M")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            f"sluice: sluice supervise (pid {pid}) is capturing on rx0: the self-test would compete with it for "
            "CPU and disk (stop it first, or pass --force)"]
        assert selftest_namespaces() == []
        assert sup.proc is not None and sup.proc.poll() is None  # the capture went on
    # The self-test's journal event, last before the supervisor started, is not a supervisor that died.
    events = [e["event"] for e in read_events(spool / "journal.jsonl")]
    assert events.index("selftest") < events.index("supervisor_start")
    assert "supervisor_unclean_stop" not in events


def test_ctrl_c_mid_run_removes_everything(veth_ns: VethNs, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    config = box_config(tmp_path / "sluice.toml", veth_ns.rx, spool, SMALL)
    before = links_in(veth_ns.ns)
    proc = subprocess.Popen(selftest_argv(veth_ns.ns, config, "--seconds", "5", "--disk-seconds", "0.2",
                                                          "--sizes", "64"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stderr is not None
    for line in proc.stderr:  # the disk test is done: the rig, the capture and trafgen are being started
        if "measuring the sustained write rate" in line:
            break
    deadline = time.monotonic() + 20
    while not selftest_namespaces() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert selftest_namespaces(), "the rig never came up"
    time.sleep(1.0)  # deliberate: a moment into the rig's run (the ramp), to interrupt it there
    proc.send_signal(signal.SIGINT)
    code, rest = proc.wait(timeout=60), proc.stderr.read()
    assert code == 130 and "sluice: interrupted" in rest, f"exit {code}: {rest}"
    assert_nothing_left(veth_ns.ns, before, spool)
    assert not (spool / "selftest.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--sizes", "40"], "sluice: frame size 40 is not allowed: 64..1518 bytes (Ethernet frame with FCS)"),
    (["--link-speed", "fast"], "sluice: link speed 'fast' is not allowed (allowed: a rate such as 10G, 1000M or 100k)"),
    (["--seconds", "0"], "sluice: --seconds 0 is not allowed (allowed: 0 < seconds <= 600)"),
    (["--generator-cpus", "4096"], "sluice: --generator-cpus '4096' is not allowed (allowed: CPUs of this machine "
                                   "such as 0 or 0-3; online: " + ",".join(map(str, sorted(os.sched_getaffinity(0))))
                                   + ")"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    config = write_config(tmp_path / "sluice.toml", "lo", tmp_path)
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "selftest", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [message]
