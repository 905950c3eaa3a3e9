"""A whole `sluice pipeline run --once` pass (backup, check, repair, de-duplication, flows with
pyarrow) on a real capture, under strace, stays inside sluice-pipeline.service as the
capture_node role renders it: only the system calls of its SystemCallFilter= and the socket
families of its RestrictAddressFamilies= (tests/build/units.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.build.units import UNITS_DIR, check_against_unit, needs_strace, render_unit_tree
from tests.catalog.conftest import Spool, rows, sluice
from tests.conftest import REPO

pytestmark = [pytest.mark.root, pytest.mark.netns, needs_strace,
              pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook (deps/apt)")]


def test_a_pipeline_pass_stays_inside_sluice_pipeline_service(spool: Spool, tmp_path: Path) -> None:
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    assert sluice("catalog", "rebuild", "--spool", str(copy)).returncode == 0
    backup, processed = tmp_path / "backup", tmp_path / "processed"
    backup.mkdir()
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[capture]\ninterfaces = ["rx0"]\nspool = "{copy}"\nhost = "lab"\n'
                   f'[pipeline]\nbackup = ["{backup}"]\nprocessed = "{processed}"\n')
    # As the unit runs it: not root (sqlite, for one, chowns its journal files only as root).
    subprocess.run(["chown", "-R", "nobody:nogroup", str(copy), str(backup)], check=True)
    processed.mkdir()
    subprocess.run(["chown", "nobody:nogroup", str(processed), str(tmp_path)], check=True)
    log = tmp_path / "strace.log"
    # DAC_READ_SEARCH only to reach this test's Python and temporary folder, both root's.
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=+dac_read_search",
              "--ambient-caps=+dac_read_search"]
    argv = [sys.executable, "-m", "appliance.cli", "pipeline", "run", "--once", "--config", str(cfg)]
    proc = subprocess.run(["strace", "-f", "-qq", "-o", str(log), *nobody, *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # the pass did every step: the trace covers pyarrow writing the flows
    assert {r["state"] for r in rows(copy)} == {"flows"}
    assert list((processed / "flows").rglob("*.parquet"))
    unit = (render_unit_tree(tmp_path / "units") / UNITS_DIR / "sluice-pipeline.service").read_text()
    check_against_unit(unit, log, start=f'execve("{sys.executable}"')  # setpriv's own calls before it
