"""Bad input: one clear line on stderr and exit 2, nothing written. Plus the C unit tests under
ASan/UBSan and a short capture by the ASan build of the writer."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.lab.harness.mounts import tmpfs
from tests.capture.capfiles import read_capture
from tests.capture.conftest import NATIVE, closed_files, start_writer


def run(binary: Path, args: list[str], ns: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(binary), *args]
    if ns is not None:
        argv = netns.exec_argv(ns, argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sluice-capture: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert proc.stdout == ""


BAD_FLAGS = [
    (["--format", "xml"], "--format xml"),
    (["--snaplen", "10"], "--snaplen 10"),
    (["-s", "63"], "--snaplen 63"),
    (["--host", ".x"], "--host .x"),
    (["--host", ".."], "--host .."),
    (["--rotate-size", "99999999T"], "--rotate-size 99999999T"),
    (["--rotate-size", "5T"], "--rotate-size 5T"),
    (["--ring-mb", "many"], "--ring-mb many"),
    (["--cpus", "0,0"], "--cpus 0,0"),
    (["--cpus", "0,1"], "--cpus lists 2 CPUs for 1 workers"),
    (["--filter", "tcp", "udp"], "filter is given twice"),
    (["--snaplen", "abc"], "--snaplen abc"),
    (["--rotate-size", "12Q"], "--rotate-size 12Q"),
    (["--rotate-seconds", "-5"], "--rotate-seconds"),
    (["--compress", "lz4"], "--compress lz4"),
    (["--compress", "zstd:99"], "LEVEL"),
    (["--buffer-mb", "1"], "--buffer-mb"),
    (["--workers", "0"], "--workers"),
    (["--fanout", "random"], "--fanout random"),
    (["--timestamps", "gps"], "--timestamps gps"),
    (["--backend", "dpdk"], "--backend dpdk"),
    (["--stats-interval", "0"], "--stats-interval"),
    (["--bogus"], "--bogus"),
    (["extra-arg"], "bad filter 'extra-arg'"),
]


@pytest.mark.parametrize("args,word", BAD_FLAGS)
def test_bad_flags(capture_binary, tmp_path: Path, args: list[str], word: str) -> None:
    assert_one_line_exit_2(run(capture_binary, ["-i", "lo", "-w", str(tmp_path), *args]), word)
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_flag_of_the_readme(capture_binary) -> None:
    proc = run(capture_binary, ["--help"])
    assert proc.returncode == 0 and proc.stderr == ""
    readme = (NATIVE / "README.md").read_text()
    section = readme[readme.index("## sluice-capture: flags"):readme.index("### How sluice-capture works")]
    flags = set(re.findall(r"^\| `(--[a-z-]+)", section, re.M))
    assert len(flags) >= 18 and "--recover" in proc.stdout
    assert flags <= set(re.findall(r"--[a-z-]+", proc.stdout)), flags - set(re.findall(r"--[a-z-]+", proc.stdout))


def test_missing_pieces(capture_binary, tmp_path: Path) -> None:
    assert_one_line_exit_2(run(capture_binary, ["-w", str(tmp_path)]), "-i IFACE or -r FILE")
    assert_one_line_exit_2(run(capture_binary, ["-i", "lo"]), "-w DIR")
    assert_one_line_exit_2(run(capture_binary, ["-i"]), "needs a value")
    assert_one_line_exit_2(run(capture_binary, ["-i", "lo", "-w", str(tmp_path / "nope")]),
                           "nope", "No such file")
    assert_one_line_exit_2(run(capture_binary, ["-r", str(tmp_path / "none.pcap"), "-w", str(tmp_path)]),
                           "none.pcap")


@pytest.mark.root
@pytest.mark.netns
def test_missing_interface_and_bad_filter(link, capture_binary, tmp_path: Path) -> None:
    assert_one_line_exit_2(run(capture_binary, ["-i", "nosuch0", "-w", str(tmp_path)], link.cap),
                           "nosuch0", "no such interface")
    assert_one_line_exit_2(run(capture_binary, ["-i", "nosuch0", "-w", str(tmp_path), "--backend", "pcap"],
                               link.cap), "nosuch0")
    assert_one_line_exit_2(run(capture_binary, ["-i", link.rx, "-w", str(tmp_path), "--filter",
                                                "tcp porrt 80"], link.cap), "bad filter", "porrt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.root
def test_unwritable_directory(capture_binary, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    with tmpfs(ro, "1M", "ro"):
        assert_one_line_exit_2(run(capture_binary, ["-i", "lo", "-w", str(ro)]), str(ro), "not writable")


def test_c_unit_tests_under_asan() -> None:
    proc = subprocess.run(["flock", "/tmp/sluice-native.lock", "make", "-C", str(NATIVE), "test"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "test_pcapenc: ok" in proc.stdout and "test_capture_units: ok" in proc.stdout


@pytest.mark.root
@pytest.mark.netns
def test_asan_build_captures_rotates_and_stops_cleanly(link, tmp_path: Path) -> None:
    subprocess.run(["flock", "/tmp/sluice-native.lock", "make", "-s", "-C", str(NATIVE), "asan"],
                   check=True, capture_output=True, timeout=900)
    asan = NATIVE / "build" / "asan" / "sluice-capture"
    w = start_writer(asan, link.cap, ["-i", link.rx, "-w", str(tmp_path), "--rotate-size", "16K",
                                      "--workers", "2", "--buffer-mb", "4", "--slice", "header"])
    w.wait_ready()
    netns.run_in(link.h, ["ping", "-q", "-c", "40", "-i", "0.01", "-s", "1000", link.cap_ip])
    before = len(w.lines)
    w.proc.send_signal(signal.SIGHUP)
    w.wait_for(lambda d: d["type"] == "file", since=before)  # SIGHUP rotates: a file is closed
    assert w.stop() == 0, w.stderr_text()
    err = w.stderr_text()
    assert "Sanitizer" not in err and "runtime error" not in err, err
    files = closed_files(tmp_path)
    assert len(files) >= 2
    assert sum(len(read_capture(f).packets) for f in files) == w.final()["packets"] >= 80
