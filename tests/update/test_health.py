"""The mark-good health check (`sluice update health`) against a real `sluice supervise` on a lab's
SPAN port with its spool on a loop-mounted filesystem; and the settling of a failed update in
the slot the box fell back to (journal, state, sluice_update_* metrics), with a real grubenv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import update
from appliance.journal import read_events
from appliance.lab import netns
from appliance.watchdogs.update import UpdateReading, UpdateWatchdog
from tests.conftest import REPO, SLUICE_CAPTURE, require_tool
from tests.supervisor.running import Supervise, write_config
from tests.supervisor.test_retention_loopfs import loop_ext4  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.root, pytest.mark.netns]


def health(ns: str, config: Path, timeout: float = 0) -> tuple[int, dict[str, str]]:
    """`sluice update health` inside the lab's capture namespace (where the metrics listen)."""
    proc = subprocess.run(netns.exec_argv(ns, [sys.executable, "-m", "appliance.cli", "update", "health",
                                               "--config", str(config), "--unit", "", "--timeout", str(timeout)]),
                          capture_output=True, text=True, cwd=REPO)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    return proc.returncode, lines


def test_health_follows_a_real_supervisor(lab, loop_ext4: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    if not SLUICE_CAPTURE.exists():
        pytest.fail(f"{SLUICE_CAPTURE} is missing: `make native` builds it")
    config = write_config(tmp_path / "sluice.toml", lab.capture_if, loop_ext4, extra="[nic]\ntune = false\n")
    # sluice-capture, unless the test has told the writer to fail.
    flag, wrapper = tmp_path / "fail-writer", tmp_path / "sluice-capture"
    wrapper.write_text(f'#!/bin/sh\n[ -e "{flag}" ] && [ "$1" != "--recover" ] && exit 1\n'
                       f'exec "{SLUICE_CAPTURE}" "$@"\n')
    wrapper.chmod(0o755)
    config.write_text(config.read_text().replace(f'binary = "{SLUICE_CAPTURE}"', f'binary = "{wrapper}"'))
    assert str(wrapper) in config.read_text()
    sup = Supervise(lab.capture_ns, config, loop_ext4)
    with sup:
        rc, lines = health(lab.capture_ns, config, timeout=30)
        assert rc == 0, lines
        assert lines == {"config": "ok", "supervisor": "ok", "spool-mounted": "ok", "metrics": "ok", "writers": "ok"}

        # The writer dies and cannot come back (its binary fails while the flag exists): no stats.
        flag.touch()
        os.kill(sup.state()["writers"][0]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            rc, lines = health(lab.capture_ns, config)
            if rc == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert rc == 1
        assert lines["writers"] == f"FAIL no stats from the writer of {lab.capture_if}"
        assert lines["supervisor"] == "ok" and lines["spool-mounted"] == "ok" and lines["metrics"] == "ok"
        flag.unlink()
        rc, lines = health(lab.capture_ns, config, timeout=60)
        assert rc == 0, lines

        # The next version refuses this config: one line naming the key; nothing else is checked.
        refused = tmp_path / "refused.toml"
        refused.write_text(config.read_text().replace("ring_mb = 8", "ring_megabytes = 8"))
        rc, lines = health(lab.capture_ns, refused, timeout=60)  # returns at once: it cannot get better
        assert rc == 1
        assert list(lines) == ["config"]
        assert lines["config"].startswith("FAIL refused by this version: ") and "ring_megabytes" in lines["config"]

        # The same config with its spool on the root filesystem instead of a mounted one.
        plain = tmp_path / "plain"
        plain.mkdir()
        if os.stat(plain).st_dev == os.stat("/").st_dev:
            unmounted = tmp_path / "unmounted.toml"
            unmounted.write_text(config.read_text().replace(f'spool = "{loop_ext4}"', f'spool = "{plain}"'))
            _rc, lines = health(lab.capture_ns, unmounted)
            assert lines["spool-mounted"] == f"FAIL {plain} is on the root filesystem, not a mounted spool"
    # Supervisor gone: no fresh status, no metrics.
    rc, lines = health(lab.capture_ns, config)
    assert rc == 1
    assert lines["supervisor"].startswith("FAIL status.json is") and lines["metrics"].startswith("FAIL ")


def test_fallback_slot_reports_the_failed_update(tmp_path: Path) -> None:
    """Booted A again after B was tried (B_TRY=1) and never marked good: the update is settled as
    failed in the journal, the state and the metrics, whatever this slot's own health."""
    require_tool("grub-editenv")
    spool = tmp_path / "spool"
    spool.mkdir()
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["c0"]\nspool = "{spool}"\nnot_a_key = 1\n')
    grubenv = tmp_path / "grubenv"
    subprocess.run(["grub-editenv", str(grubenv), "create"], check=True)
    subprocess.run(["grub-editenv", str(grubenv), "set", "ORDER=B A", "A_OK=1", "A_TRY=1", "B_OK=1", "B_TRY=1"],
                   check=True)
    conf = tmp_path / "system.conf"
    conf.write_text(f"[system]\ncompatible=sluice-appliance-amd64\nbootloader=grub\ngrubenv={grubenv}\n")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=PARTLABEL=sluice-root-a rauc.slot=A ro\n")
    release = tmp_path / "release"
    release.write_text("SLUICE_VERSION=1.0\nSLUICE_GIT_COMMIT=abc\n")
    state_path = tmp_path / "update.json"
    state = update.UpdateState(pending={"slot": "B", "version": "2.0", "commit": "def", "from_slot": "A"},
                               installs_total=1)
    state.save(str(state_path))
    paths = update.Paths(config=str(config), rauc_conf=str(conf), state=str(state_path), release=str(release),
                         cmdline=str(cmdline))
    # This slot's own check fails at once (its config is refused), so no reboot and no mark-good.
    assert update.mark_good(paths, unit=None, timeout=5, reboot=False) == 1
    after = update.UpdateState.load(str(state_path))
    assert after.pending is None and after.rollbacks_total == 1 and after.succeeded_total == 0
    assert after.last is not None and after.last["result"] == "failed" and after.last["version"] == "2.0"
    assert "slot B did not come up healthy" in after.last["reason"]
    rolled = list(read_events(spool / "journal.jsonl", "update_rolled_back"))
    assert len(rolled) == 1 and rolled[0]["running_slot"] == "A" and rolled[0]["version"] == "2.0"
    failed = list(read_events(spool / "journal.jsonl", "slot_health_failed"))
    assert len(failed) == 1 and "not_a_key" in failed[0]["reason"] and failed[0]["on_trial"] is False

    doc = update.update_status(paths)
    assert (doc["version"], doc["commit"], doc["slot"]) == ("1.0", "abc", "A")
    reading = UpdateReading(str(doc["version"]), str(doc["commit"]), str(doc["slot"]), bool(doc["pending"]),
                            int(doc["installs_total"]), int(doc["succeeded_total"]), int(doc["rollbacks_total"]),
                            doc.get("last") or None)
    samples = {(s.family, s.labels): s.value for s in UpdateWatchdog.samples(reading)}
    assert samples[("sluice_update_rollbacks", ())] == 1
    assert samples[("sluice_update_installs", ())] == 1
    assert samples[("sluice_update_pending", ())] == 0
    assert samples[("sluice_update_last_succeeded", ("2.0", "B"))] == 0
    assert samples[("sluice_update_info", ("1.0", "abc", "A"))] == 1

    # A second boot of A changes nothing more: the failure is counted once.
    update.mark_good(paths, unit=None, timeout=5, reboot=False)
    assert update.UpdateState.load(str(state_path)).rollbacks_total == 1
    assert len(list(read_events(spool / "journal.jsonl", "update_rolled_back"))) == 1
