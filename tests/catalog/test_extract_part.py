"""sluice extract reads the file a writer is still writing (its .part), up to the last whole
record on disk, without disturbing the writer."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from appliance import catalog
from appliance.lab import netns
from tests.capture.conftest import start_writer
from tests.catalog.conftest import Namespaces, dump, sluice
from tests.conftest import SLUICE_CAPTURE, SLUICE_PCAP

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _packets(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith("\t")]


def test_extract_covers_the_current_part(namespaces: Namespaces, tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="sluice-part-", dir="/var/tmp") as d:
        spool = Path(d)
        (spool / "box").mkdir()
        writer = start_writer(SLUICE_CAPTURE, namespaces.cap, ["-i", "rx0", "-w", str(spool / "box"), "--host", "box",
                                                                "--date-dirs", "--rotate-size", "1G"])
        try:
            writer.wait_ready()
            catalog.rebuild(spool)  # an empty catalog: every packet is in the .part
            netns.run_in(namespaces.h, ["ping", "-c", "30", "-i", "0.01", "192.0.2.2"])
            writer.wait_for(lambda s: s["type"] == "stats" and s["packets"] >= 60)
            parts = list(spool.rglob("*.part"))
            assert len(parts) == 1
            size_before = parts[0].stat().st_size
            out = tmp_path / "live.pcapng"
            deadline = time.monotonic() + 5  # the writer flushes within a second
            while True:
                proc = sluice("extract", "--spool", str(spool), "--from", "-1h", "--to", "now",
                              "--filter", "icmp", "-o", str(out))
                assert proc.returncode == 0, proc.stderr.decode()
                live = _packets(dump(out))
                if len(live) >= 60 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert len(live) >= 60, proc.stderr.decode()
            assert b"1 open file(s)" in proc.stderr
            assert parts[0].exists() and parts[0].stat().st_size >= size_before  # still being written
            netns.run_in(namespaces.h, ["ping", "-c", "5", "-i", "0.01", "192.0.2.2"])
        finally:
            rc = writer.stop()
        assert rc == 0
        closed = [f["path"] for f in writer.files()]
        assert len(closed) == 1 and not list(spool.rglob("*.part"))
        check = subprocess.run([str(SLUICE_PCAP), "check", closed[0]], capture_output=True)
        assert check.returncode == 0, check.stdout  # the writer's file is whole
        catalog.rebuild(spool)
        proc = sluice("extract", "--spool", str(spool), "--from", "-1h", "--filter", "icmp", "-o",
                      str(tmp_path / "closed.pcapng"))
        assert proc.returncode == 0, proc.stderr.decode()
        after = dump(tmp_path / "closed.pcapng")
        assert len(_packets(after)) == len(live) + 10
        assert after.startswith(dump(out))  # the same packets, bytes and times, in order
