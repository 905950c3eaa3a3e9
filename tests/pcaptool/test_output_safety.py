"""Every writing command of sluice-pcap: '-' is stdout, FIFOs and character devices (also through
a symlink) are written in place and never replaced, anything else that is not a regular file is
refused with one line; an interrupted job leaves no temporary behind (issues 18 and 12)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import SLUICE_PCAP
from tests.pcaptool import ngbuild
from tests.pcaptool.pcapfiles import one_error_line, run
from tests.pcaptool.test_fidelity import KEY_HEX, T0, _pcap, _udp_frame

FRAMES = [(T0 + i, i, _udp_frame(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2 + i % 5]))) for i in range(50)]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "in.pcap"
    p.write_bytes(_pcap(FRAMES))
    return p


def _argv(cmd: str, src: Path, out: str, tmp_path: Path) -> list[str]:
    if cmd == "merge":
        return ["merge", "-o", out, str(src)]
    if cmd == "flows":
        return ["flows", "-o", out, str(src)]
    if cmd == "pick":
        pos = tmp_path / "in.pos"
        if not pos.exists():
            run("index", "--positions", pos, src, check=True)
        return ["pick", "--positions", str(pos), "--addr", "192.0.2.1", "-o", out, str(src)]
    if cmd == "anonymize":
        key = tmp_path / "key"
        key.write_text(KEY_HEX)
        key.chmod(0o600)
        return ["anonymize", "--key-file", str(key), str(src), out]
    return [cmd, str(src), out]


WRITERS = ["convert", "repair", "dedup", "merge", "anonymize", "flows", "pick"]


def _is_capture_or_csv(data: bytes, cmd: str) -> bool:
    if cmd == "flows":
        return data.startswith(b"first_ts,")
    return data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a")


@pytest.mark.parametrize("cmd", WRITERS)
def test_dash_is_stdout_and_the_summary_moves_to_stderr(cmd: str, src: Path, tmp_path: Path) -> None:
    proc = subprocess.run([str(SLUICE_PCAP), *_argv(cmd, src, "-", tmp_path)], capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _is_capture_or_csv(proc.stdout, cmd)
    assert (f"{cmd}: packets in 50" if cmd != "pick" else "pick: records 50") in proc.stderr.decode()
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("cmd", WRITERS)
def test_fifo_and_symlink_to_it_are_written_in_place(cmd: str, src: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for target in (fifo, link):
        got: list[bytes] = []
        reader = threading.Thread(target=lambda sink=got: sink.append(fifo.read_bytes()))
        reader.start()
        proc = run(*_argv(cmd, src, str(target), tmp_path))
        reader.join(timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert _is_capture_or_csv(got[0], cmd)
        assert fifo.is_fifo() and link.is_symlink() and link.resolve() == fifo


@pytest.mark.root
@pytest.mark.parametrize("cmd", WRITERS)
def test_character_devices_are_never_replaced(cmd: str, src: Path, tmp_path: Path) -> None:
    # A null device of our own (the machine's /dev/null is never put at risk by a test), a
    # symlink to it, and a symlink shaped like /dev/stdout (to the process's fd 1).
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    link = tmp_path / "null-link"
    link.symlink_to(null)
    for target in (null, link):
        proc = run(*_argv(cmd, src, str(target), tmp_path))
        assert proc.returncode == 0, proc.stderr
    assert null.is_char_device() and link.is_symlink()
    stdout_link = tmp_path / "stdout"
    stdout_link.symlink_to("/proc/self/fd/1")
    proc = subprocess.run([str(SLUICE_PCAP), *_argv(cmd, src, str(stdout_link), tmp_path)], capture_output=True)
    assert proc.returncode == 0 and _is_capture_or_csv(proc.stdout, cmd)
    assert (f"{cmd}: packets in 50" if cmd != "pick" else "pick: records 50").encode() in proc.stderr
    assert stdout_link.is_symlink()


@pytest.mark.parametrize("cmd", WRITERS)
def test_what_is_not_a_file_is_refused_in_one_line(cmd: str, src: Path, tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for target, why in ((d, "a directory"), (dangling, "a symlink to nothing")):
        proc = run(*_argv(cmd, src, str(target), tmp_path))
        assert proc.returncode == 2
        assert why in one_error_line(proc) and "refusing to replace it" in proc.stderr
    assert d.is_dir() and dangling.is_symlink()


def test_symlink_to_a_regular_file_stays_a_symlink(src: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.pcap"
    real.write_bytes(b"old")
    link = tmp_path / "link.pcap"
    link.symlink_to(real)
    run("convert", src, link, check=True)
    assert link.is_symlink() and real.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"


# ---------------------------------------------------------------- repair on zeros, signals


def test_repair_refuses_zeros_quickly(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros"
    with zeros.open("wb") as f:
        f.truncate(256 << 20)  # sparse: costs no disk
    for path in (zeros, Path("/dev/zero")):
        t0 = time.monotonic()
        proc = run("repair", path, tmp_path / "out.pcap")
        assert proc.returncode == 2, proc.stdout
        assert "no records found" in one_error_line(proc)
        assert time.monotonic() - t0 < 30
    assert list(tmp_path.glob("*out.pcap*")) == []


def test_repair_reads_a_pcapng_whose_section_header_is_zeroed(tmp_path: Path) -> None:
    frames = [_udp_frame(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2 + i % 5])) for i in range(30)]
    head = ngbuild.shb()
    data = head + ngbuild.idb(1, 6) + b"".join(ngbuild.epb(0, T0 * 10**6 + i, f) for i, f in enumerate(frames))
    src = tmp_path / "zeroed-shb.pcapng"
    src.write_bytes(bytes(len(head)) + data[len(head):])
    out = tmp_path / "out.pcapng"
    run("repair", src, out, check=True)
    got = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.time_epoch"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert got == [f"{T0}.{i:06d}000" for i in range(30)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_job_leaves_no_temporary(sig: int, tmp_path: Path) -> None:
    # A job reading from a pipe that stays open: interrupted while its output is a temporary.
    out = tmp_path / "out.pcap"
    proc = subprocess.Popen([str(SLUICE_PCAP), "convert", "-", str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(_pcap(FRAMES))
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob(".out.pcap.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(tmp_path.glob(".out.pcap.*.tmp")), "the job never created its temporary"
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == -sig
    proc.stdin.close()
    assert list(tmp_path.iterdir()) == []
