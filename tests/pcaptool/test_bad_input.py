"""Bad input to every subcommand: one clear line on stderr and exit 1 or 2, never a crash."""

from __future__ import annotations

import struct

import pytest

from tests.pcaptool.pcapfiles import one_error_line, run


def _inputs(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n" * 10)
    huge = tmp_path / "huge.pcap"
    huge.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                     + struct.pack("<IIII", 1700000000, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"\0" * 64)
    # A pcapng whose second block claims length 0: a reader that trusts it never advances.
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)
    loop = tmp_path / "loop.pcapng"
    loop.write_bytes(shb + idb + struct.pack("<II", 6, 0) + b"\0" * 40)
    return {"empty": (empty, 2), "text": (text, 2), "huge": (huge, 1), "loop": (loop, 1)}


@pytest.mark.parametrize("kind", ["empty", "text", "huge", "loop"])
@pytest.mark.parametrize("command", ["info", "check", "convert", "dedup", "anonymize", "merge", "flows"])
def test_bad_input_one_line_and_exit_code(tmp_path, kind, command):
    path, code = _inputs(tmp_path)[kind]
    out = tmp_path / "out.pcap"
    key = tmp_path / "k"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    argv = {
        "info": ["info", path], "check": ["check", path], "convert": ["convert", path, out],
        "dedup": ["dedup", path, out], "anonymize": ["anonymize", "--key-file", key, path, out],
        "merge": ["merge", "-o", out, path], "flows": ["flows", "-o", out, path],
    }[command]
    proc = run(*argv)
    assert proc.returncode == code, proc.stderr
    line = one_error_line(proc)
    assert str(path) in line
    assert not out.exists(), "no output may be left behind"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temporary left behind"


@pytest.mark.parametrize("kind", ["empty", "text", "huge", "loop"])
def test_repair_of_hopeless_input_is_one_line(tmp_path, kind):
    path, _ = _inputs(tmp_path)[kind]
    out = tmp_path / "out.pcap"
    proc = run("repair", path, out)
    if kind in ("empty", "text"):
        assert proc.returncode == 2
        one_error_line(proc)
        assert not out.exists()
    else:
        # A header survives: repair writes a valid file with no invented packet.
        assert proc.returncode == 0, proc.stderr
        assert run("check", out).returncode == 0
        assert "packets in 0, out 0" in proc.stdout


def test_bad_flags(tmp_path):
    for argv in (["dedup", "--window", "soon", "a", "b"], ["merge", "--offset", "x", "-o", "o", "a"],
                 ["flows", "--format", "xml", "-o", "o", "a"], ["convert", "--format", "erf", "a", "b"],
                 ["nosuch"], ["anonymize", "a", "b"]):
        proc = run(*argv)
        assert proc.returncode == 2, argv
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("command", ["convert", "repair", "dedup", "anonymize", "merge", "flows"])
def test_output_never_replaces_an_input(tmp_path, command):
    src = tmp_path / "in.pcap"
    src.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                    + struct.pack("<IIII", 1700000000, 0, 14, 14) + bytes(14))
    before = src.read_bytes()
    key = tmp_path / "k"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    argv = {"convert": ["convert", src, src], "repair": ["repair", src, src], "dedup": ["dedup", src, src],
            "anonymize": ["anonymize", "--key-file", key, src, src], "merge": ["merge", "-o", src, src],
            "flows": ["flows", "-o", src, src]}[command]
    proc = run(*argv)
    assert proc.returncode == 2
    assert "inputs are never modified" in one_error_line(proc)
    assert src.read_bytes() == before
