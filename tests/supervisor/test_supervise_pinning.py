"""Issue 19: the supervisor pins each writer's capture workers where `sluice nic tune` put the RX
queue interrupts (`[capture] worker_cpus = "auto"`), or on the CPUs the config lists; the test
reads the threads' affinity as the kernel reports it (/proc/PID/task/*/status)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.status import format_status
from tests.supervisor.running import Supervise, write_config

pytestmark = [pytest.mark.root, pytest.mark.netns]


def thread_cpus(pid: int) -> dict[str, str]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text().splitlines()
        out[(task / "comm").read_text().strip()] = next(
            line.split(":", 1)[1].strip() for line in status if line.startswith("Cpus_allowed_list:"))
    return out


@pytest.mark.parametrize("mode", ["auto", "list"])
def test_workers_run_on_the_cpus_of_the_rx_interrupts(veth_ns, tmp_path: Path, mode: str) -> None:  # noqa: ANN001
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    cpu = cpus[-1]
    spool = tmp_path / "spool"
    # auto: `nic tune` gives the IRQs (a veth has none: irq_cpus itself) to `cpu`; list: the config says
    extra = f"[nic]\nirq_cpus = [{cpu}]\n" if mode == "auto" else ""
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool, extra=extra)
    if mode == "list":
        cfg.write_text(cfg.read_text().replace("[capture]\n", f"[capture]\nworker_cpus = [{cpu}]\n", 1))
    with Supervise(veth_ns.ns, cfg, spool) as sup:
        state = sup.state()
        pid = state["writers"][0]["pid"]
        seen = thread_cpus(pid)
        assert state["writers"][0]["cpus"] == [cpu]
        text = format_status(state, now=state["ts"])
    # what `sluice status` says of the writer's memory, from the real status.json
    w = state["writers"][0]
    assert w["ring_bytes"] == 8 << 20 and w["buffer_bytes"] == 16 << 20 and w["link_bps"] == 10**10
    assert f"hold {w['burst_seconds']:.2f} s of line rate (10 Gbit/s)" in text and f"on CPUs {cpu}" in text
    assert seen["capture-0"] == str(cpu), seen
    assert seen["disk-writer"] != str(cpu) or len(cpus) == 1, seen  # the writer thread is not pinned


def test_workers_are_not_pinned_without_tuning(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool, extra="[nic]\ntune = false\n")
    with Supervise(veth_ns.ns, cfg, spool) as sup:
        pid = sup.state()["writers"][0]["pid"]
        seen = thread_cpus(pid)
    assert len(seen["capture-0"].replace("-", ",").split(",")) > 1 or len(os.sched_getaffinity(0)) == 1, seen
