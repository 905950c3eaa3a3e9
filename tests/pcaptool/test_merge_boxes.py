"""`sluice merge` of two boxes' captures: each file shifted by its box's journaled clock offset
(issue 15), the same packets in the same order as a merge of the true times, and the remaining
uncertainty said. Box B's clock runs 2.5 s fast: editcap -t 2.5 of a real lab capture."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.journal import Journal
from appliance.merge import MAX_DRIFT, ClockPoint, offset_at
from tests.conftest import REPO
from tests.pcaptool.pcapfiles import packets, run

pytestmark = [pytest.mark.root, pytest.mark.netns]


def sluice(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _journal(path: Path, host: str, points: list[tuple[float, float, float]]) -> Path:
    journal = Journal(path)
    for ts, offset, error in points:
        journal.append("clock", ts=ts, host=host, offset_seconds=offset, error_seconds=error, source="chrony",
                       synchronized=True)
    return path


def test_two_boxes_merge_as_if_their_clocks_agreed(captures, tmp_path):  # noqa: ANN001
    a = tmp_path / "boxa_span0_20261129T000000.000000000Z_000001.pcap"
    b = tmp_path / "boxb_eth0_20261129T000000.000000000Z_000001.pcap"
    shutil.copy(captures.span_ns, a)
    subprocess.run(["editcap", "-t", "2.5", str(captures.host_ns), str(b)], check=True, capture_output=True)
    info = json.loads(run("info", "--json", a, check=True).stdout)
    first, last = info["first_ns"] / 1e9, info["last_ns"] / 1e9
    ja = _journal(tmp_path / "a" / "journal.jsonl", "boxa", [(first - 30, 0.0, 0.0002), (last + 30, 0.0, 0.0003)])
    jb = _journal(tmp_path / "b" / "journal.jsonl", "boxb", [(first - 60, 2.5, 0.001), (last + 60, 2.5, 0.001)])
    out, reference = tmp_path / "merged.pcap", tmp_path / "reference.pcap"
    proc = sluice("merge", "-o", out, "--journal", ja, "--journal", jb, "--json", a, b)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    shifts = {Path(f["path"]).name.split("_")[0]: f["shift_seconds"] for f in doc["files"]}
    assert shifts == {"boxa": 0.0, "boxb": -2.5}
    assert doc["uncertainty_seconds"] == pytest.approx(0.0003 + 0.001)
    run("merge", "-o", reference, captures.span_ns, captures.host_ns, check=True)
    assert packets(out, tmp_path) == packets(reference, tmp_path)
    assert doc["packets"] == len(packets(reference, tmp_path))
    # the same without the clocks puts box B's packets 2.5 s late
    plain = tmp_path / "plain.pcap"
    run("merge", "-o", plain, a, b, check=True)
    assert packets(plain, tmp_path) != packets(reference, tmp_path)
    human = sluice("merge", "-o", tmp_path / "again.pcap", "--journal", ja, "--journal", jb, a, b)
    assert human.returncode == 0 and "boxb: 1 file(s) shifted by -2500.000..-2500.000 ms" in human.stdout
    assert "less than 1.300 ms apart may be out of order" in human.stdout


def test_a_box_without_its_journal_is_refused_in_one_line(captures, tmp_path):  # noqa: ANN001
    a = tmp_path / "boxa_span0_20261129T000000.000000000Z_000001.pcap"
    b = tmp_path / "boxb_eth0_20261129T000000.000000000Z_000001.pcap"
    shutil.copy(captures.span_ns, a)
    shutil.copy(captures.host_ns, b)
    info = json.loads(run("info", "--json", a, check=True).stdout)
    ja = _journal(tmp_path / "journal.jsonl", "boxa", [(info["first_ns"] / 1e9, 0.0, 0.001)])
    out = tmp_path / "merged.pcap"
    proc = sluice("merge", "-o", out, "--journal", ja, a, b)
    assert proc.returncode == 2 and not out.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no clock record of box 'boxb'" in lines[0] and "Traceback" not in proc.stderr
    proc = sluice("merge", "-o", out, "--journal", tmp_path / "missing.jsonl", a)
    assert proc.returncode == 2 and "no such journal" in proc.stderr


def test_offset_between_and_beyond_the_journaled_clock() -> None:
    points = [ClockPoint(100.0, 0.010, 0.001), ClockPoint(200.0, 0.020, 0.003)]
    assert offset_at(points, 150.0) == pytest.approx((0.015, 0.003))
    offset, error = offset_at(points, 300.0)  # type: ignore[misc]
    assert offset == 0.020 and error == pytest.approx(0.003 + MAX_DRIFT * 100)
    assert offset_at(points, 200.0 + 7 * 3600) is None
    assert offset_at([], 1.0) is None
