"""The hardening of every Sluice unit: `systemd-analyze security --offline=yes` scores each one
(the packaged units with the capture_node drop-in, the roles' units rendered with their
defaults) at or under the figure docs/supervisor.md gives it; and what the units forbid is what
the programs really do without: the supervisor with a real writer capturing on a veth pair,
`sluice nic tune` on it, `sluice conns`, `sluice campaign commit` and nft loading a table, run under strace, make
only system calls their unit's SystemCallFilter= allows, open only the socket families of
RestrictAddressFamilies=, and never map memory both writable and executable when
MemoryDenyWriteExecute= is set (the pipeline's pass: tests/catalog/test_pipeline_hardening.py)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.lab import netns
from tests.build.units import PACKAGED, check_against_unit, needs_strace, render_unit_tree, traced
from tests.conftest import REPO, SLUICE_CAPTURE, SLUICE_KEYD
from tests.supervisor.running import Supervise, write_config

DOC = REPO / "docs" / "supervisor.md"
# unit name as systemd-analyze is given it -> where the test finds its file in the rendered tree
UNITS = ("sluice.service", "sluice-nic-tune@c0.service", "sluice-pipeline.service", "sluice-conns.service",
         "sluice-meta.service", "sluice-campaign.service", "sluice-firewall.service",
         "sluice-storage-setup.service", "sluice-keyd@c0.service")

needs_tools = pytest.mark.skipif(shutil.which("systemd-analyze") is None or shutil.which("ansible-playbook") is None,
                                 reason="systemd-analyze and ansible-playbook (deps/apt) are needed")


def documented_scores() -> dict[str, float]:
    """The table of docs/supervisor.md's "systemd hardening": | `unit` | score | ... |"""
    rows = re.findall(r"^\| `(sluice[\w@.-]*)` \| (\d+\.\d) \|", DOC.read_text(), re.M)
    return {name: float(score) for name, score in rows}


@pytest.fixture(scope="module")
def unit_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_unit_tree(tmp_path_factory.mktemp("units"))


def exposure(root: Path, unit: str) -> float:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--no-pager", unit],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr
    # A misspelt option or a bad value is only a warning to systemd ("..., ignoring."): none here.
    assert "ignoring" not in proc.stderr, proc.stderr
    return float(match.group(1))


@needs_tools
def test_every_unit_scores_at_or_under_its_documented_exposure(unit_tree: Path) -> None:
    documented = documented_scores()
    assert set(documented) == {u.replace("@c0", "@") for u in UNITS}, documented
    measured = {unit: exposure(unit_tree, unit) for unit in UNITS}
    over = {u: (s, documented[u.replace("@c0", "@")]) for u, s in measured.items()
            if s > documented[u.replace("@c0", "@")]}
    assert not over, over  # {unit: (measured, documented)}
    # The bar for the units that capture or serve it: 3.0 or better.
    for unit in ("sluice.service", "sluice-nic-tune@c0.service", "sluice-pipeline.service", "sluice-conns.service",
                 "sluice-campaign.service", "sluice-firewall.service", "sluice-keyd@c0.service"):
        assert measured[unit] <= 3.0, (unit, measured[unit])


@needs_tools
def test_the_site_drop_in_keeps_the_packaged_hardening(unit_tree: Path) -> None:
    """The drop-in replaces the capability lists; it must not undo the rest (its score is the
    package's alone)."""
    alone = unit_tree.parent / "alone"
    (alone / "lib" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(PACKAGED / "sluice.service", alone / "lib" / "systemd" / "system")
    assert exposure(unit_tree, "sluice.service") == exposure(alone, "sluice.service")


# --- what the units forbid, against what the programs do --------------------------------------
def packets_counted(state: dict) -> bool:
    writers = state.get("writers", [])
    return bool(writers) and all(w["up"] and w["totals"]["packets"] > 0 for w in writers)


@pytest.mark.root
@pytest.mark.netns
@needs_strace
def test_supervisor_and_writer_stay_inside_sluice_service(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    spool = tmp_path / "spool"
    # nic.tune on: the start-up tuning (ethtool requests, sysctls) is traced too.
    cfg = write_config(tmp_path / "sluice.toml", veth_ns.rx, spool, extra="[nic]\ntune = true\n")
    log = tmp_path / "strace.log"
    veth_ns.run(["ip", "addr", "add", "192.0.2.1/24", "dev", veth_ns.tx])
    veth_ns.run(["ip", "neigh", "add", "192.0.2.99", "lladdr", "02:00:00:00:00:99", "dev", veth_ns.tx])
    sup = Supervise(veth_ns.ns, cfg, spool, wrapper=["strace", "-f", "-qq", "-o", str(log)])
    try:
        sup.start(timeout=60)  # strace slows the start
        veth_ns.run(["ping", "-c", "20", "-i", "0.01", "-W", "0.1", "192.0.2.99"], check=False)
        sup.wait_for(packets_counted, 20, "packets counted")
    finally:
        # SIGTERM to the supervisor itself (strace's child): its own stop path is traced too.
        children = subprocess.run(["pgrep", "-P", str(sup.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            os.kill(int(pid), signal.SIGTERM)
        assert sup.proc is not None
        sup.proc.wait(60)
        sup.stop()
    calls, families, _ = traced(log)
    # The trace covers the writer's start (its own seccomp filter) and its capture socket.
    assert "AF_PACKET" in families and "seccomp" in calls and "io_uring_setup" in calls, sorted(calls)
    check_against_unit((PACKAGED / "sluice.service").read_text(), log)


@pytest.mark.root
@needs_strace
@needs_tools
def test_nft_stays_inside_sluice_firewall_service(unit_tree: Path, tmp_path: Path) -> None:
    rules = tmp_path / "metrics.nft"
    rules.write_text("table inet sluice_metrics {\n chain input {\n  type filter hook input priority 0;\n"
                     '  tcp dport 9750 iifname "lo" accept\n  tcp dport 9750 drop\n }\n}\n')
    log = tmp_path / "strace.log"
    script = (f"strace -f -qq -o {log} nft -f {rules} && "
              f"strace -f -qq -o {log}.stop nft delete table inet sluice_metrics")
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    unit = (unit_tree / "etc" / "systemd" / "system" / "sluice-firewall.service").read_text()
    for trace in (log, Path(f"{log}.stop")):
        check_against_unit(unit, trace)


@pytest.mark.root
@pytest.mark.netns
@needs_strace
def test_nic_tune_stays_inside_sluice_nic_tune_service(veth_ns, tmp_path: Path) -> None:  # noqa: ANN001
    log = tmp_path / "strace.log"
    argv = ["strace", "-f", "-qq", "-o", str(log), sys.executable, "-m", "appliance.cli", "nic", "tune", veth_ns.rx]
    result = subprocess.run(netns.exec_argv(veth_ns.ns, argv), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert "SIOCETHTOOL" in log.read_text()  # it did ask the interface
    check_against_unit((PACKAGED / "sluice-nic-tune@.service").read_text(), log)


@pytest.mark.root
@needs_strace
@needs_tools
def test_campaign_commit_stays_inside_sluice_campaign_service(unit_tree: Path, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["lo"]\nspool = "{spool}"\n')
    log = tmp_path / "strace.log"
    argv = ["strace", "-f", "-qq", "-o", str(log), sys.executable, "-m", "appliance.cli", "campaign", "commit",
            "--config", str(cfg)]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (spool / "campaign" / ".git").is_dir()
    calls, families, _ = traced(log)
    assert not families  # PrivateNetwork=yes, AF_UNIX only: it needs no socket at all
    check_against_unit((unit_tree / "etc" / "systemd" / "system" / "sluice-campaign.service").read_text(), log)


@pytest.mark.root
@pytest.mark.netns
@needs_strace
@needs_tools
def test_conns_agent_stays_inside_sluice_conns_service(veth_ns, unit_tree: Path, tmp_path: Path) -> None:  # noqa: ANN001
    log, events = tmp_path / "strace.log", tmp_path / "conns.jsonl"
    argv = ["strace", "-f", "-qq", "-o", str(log), sys.executable, "-m", "appliance.cli", "conns", "--log", str(events),
            "--interval", "0.5", "--duration", "3", "--metrics", "127.0.0.1:0"]
    result = subprocess.run(netns.exec_argv(veth_ns.ns, argv), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    calls, families, _ = traced(log)
    assert "AF_NETLINK" in families  # it did dump the sockets (sock_diag)
    check_against_unit((unit_tree / "etc" / "systemd" / "system" / "sluice-conns.service").read_text(), log)


@pytest.mark.root
@needs_strace
def test_sluice_keyd_stays_inside_its_unit(tmp_path: Path) -> None:
    """As sluice-keyd@.service runs it: root with no capability, its connection on stdin; a key
    made and handed over, then the writer's end closes."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    log = tmp_path / "strace.log"
    writer_end, keeper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with writer_end, keeper_end:
        proc = subprocess.Popen(["setpriv", "--bounding-set", "-all", "--inh-caps", "-all", "--ambient-caps", "-all",
                                 "strace", "-f", "-qq", "-o", str(log), str(SLUICE_KEYD), "--key-dir", str(keys)],
                                stdin=keeper_end.fileno(), stderr=subprocess.PIPE, text=True)
        keeper_end.close()
        writer_end.sendall(struct.pack("=IIQ", 0x31594B53, 0, 3600))  # struct key_request (keystore.h)
        reply = writer_end.recv(4096)
        writer_end.close()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    magic, status = struct.unpack_from("=Ii", reply)
    assert magic == 0x31594B53 and status == 0, reply[:200]
    assert len(list(keys.iterdir())) == 1
    check_against_unit((PACKAGED / "sluice-keyd@.service").read_text(), log, start=str(SLUICE_KEYD))
