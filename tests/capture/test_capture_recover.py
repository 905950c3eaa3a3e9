"""kill -9 under load, then recovery: every file whole, files closed before byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.lab.harness.trafgen import Trafgen, udp_conf
from tests.capture.capfiles import read_capture
from tests.capture.conftest import closed_files, start_writer
from tests.conftest import require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt,how", [("pcapng", "cli"), ("pcap", "cli"), ("zstd", "cli"),
                                     ("pcapng", "restart")])
def test_kill9_under_load_then_recover(link, capture_binary, tmp_path: Path, fmt: str, how: str) -> None:
    require_tool("trafgen")
    out = tmp_path / "spool"
    out.mkdir()
    args = ["-i", link.rx, "-w", str(out), "--rotate-size", "2M", "--host", "k9", "--buffer-mb", "8"]
    args += ["--compress", "zstd:1"] if fmt == "zstd" else ["--format", fmt]
    w = start_writer(capture_binary, link.cap, args)
    w.wait_ready()
    with Trafgen(link.h, link.tx, udp_conf(tmp_path, 1000), count=400000, gap_us=20):
        w.wait_for(lambda d: d["type"] == "stats" and d["files_closed"] >= 2, timeout=60)
        # kill while the open file already holds written blocks
        w.wait_for(lambda d: d["type"] == "stats" and d["current_file"] is not None
                   and os.path.exists(d["current_file"]) and os.path.getsize(d["current_file"]) > 0,
                   timeout=20)
        os.kill(w.proc.pid, signal.SIGKILL)  # `ip netns exec` execs the writer: same pid
        w.proc.wait(timeout=10)
    before = {p: sha(p) for p in closed_files(out)}
    parts = list(out.rglob("*.part"))
    assert before and parts, "a kill under load leaves closed files and one .part"

    if how == "cli":
        proc = subprocess.run([str(capture_binary), "--recover", str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(x) for x in proc.stdout.splitlines()]
    else:  # the writer recovers its own .part files when it starts
        again = start_writer(capture_binary, link.cap, args)
        again.wait_ready()
        assert again.stop() == 0
        lines = [d for d in again.lines if d["type"] == "recovered"]
    assert {Path(d["part"]) for d in lines} == set(parts)

    assert not list(out.rglob("*.part"))
    for path, digest in before.items():
        assert sha(path) == digest, f"{path.name} changed by recovery"
    recovered = [Path(d["path"]) for d in lines if d["path"]]
    assert recovered, "the .part had whole records to keep"
    for f in closed_files(out):
        cf = read_capture(f)  # a strict walk: any cut record fails here
        if f in recovered:
            assert cf.packets, f"{f.name}: recovered without packets"
        if fmt != "zstd":
            proc = subprocess.run(["tshark", "-r", str(f), "-T", "fields", "-e", "frame.number"],
                                  capture_output=True, text=True)
            assert proc.returncode == 0 and len(proc.stdout.split()) == len(cf.packets), proc.stderr
