"""Bad input to `sluice conns join`: one clear line on stderr naming the file and the cause,
exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.conns.conftest import sluice_argv

GOOD_LOG = json.dumps({"v": 1, "event": "start", "ts_ns": 1, "host": "h", "addresses": []}) + "\n"
CSV = ("first_ts,last_ts,src_addr,dst_addr,src_port,dst_port,proto,vlan,packets,bytes,rev_packets,rev_bytes,"
       "tcp_flags,rev_tcp_flags\n1.000000000,2.000000000,192.0.2.1,192.0.2.2,1000,80,6,0,3,180,2,120,27,18\n")


def _join(tmp_path: Path, log: Path, flows: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sluice_argv("conns", "join", "--conns", str(log), "--flows", str(flows),
                                      "-o", str(tmp_path / "out")), cwd=REPO, capture_output=True, text=True)


def _one_line(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"log": tmp_path / "conns.jsonl", "csv": tmp_path / "flows.csv", "pcap": tmp_path / "x.pcap",
             "other_csv": tmp_path / "other.csv", "garbage_log": tmp_path / "garbage.jsonl",
             "binary_log": tmp_path / "binary.jsonl"}
    paths["log"].write_text(GOOD_LOG)
    paths["csv"].write_text(CSV)
    # a pcap global header: a capture, not flows
    paths["pcap"].write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    paths["other_csv"].write_text("time,source,destination\n1,a,b\n")
    paths["garbage_log"].write_text(GOOD_LOG + "{not json\n")
    paths["binary_log"].write_bytes(b"\xff\xfe\x00\x01" * 64)
    return paths


def test_good_input_works(tmp_path: Path, files: dict[str, Path]) -> None:
    proc = _join(tmp_path, files["log"], files["csv"])
    assert proc.returncode == 0, proc.stderr
    assert "flows 1, with a process 0" in proc.stdout
    assert list((tmp_path / "out").glob("host=*/date=1970-01-01/*.parquet"))


@pytest.mark.parametrize("log,words", [("missing", ("conns log", "No such file")),
                                       ("garbage_log", ("line 2", "not a sluice conns event")),
                                       ("binary_log", ("not text",)), ("dir", ("Is a directory",))])
def test_unreadable_log(tmp_path: Path, files: dict[str, Path], log: str, words: tuple[str, ...]) -> None:
    path = {"missing": tmp_path / "nope.jsonl", "dir": tmp_path}.get(log) or files[log]
    proc = _join(tmp_path, path, files["csv"])
    _one_line(proc, str(path), *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flows", ["pcap", "other_csv", "log"])
def test_flows_of_another_format(tmp_path: Path, files: dict[str, Path], flows: str) -> None:
    proc = _join(tmp_path, files["log"], files[flows])
    _one_line(proc, str(files[flows]), "not flows")
    assert not (tmp_path / "out").exists()


def test_bad_flags(tmp_path: Path) -> None:
    proc = subprocess.run(sluice_argv("conns", "--interval", "0"), cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "must be above 0" in proc.stderr
