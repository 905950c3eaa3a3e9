"""sluice extract on a real spool against the peers: the same packets, bytes and order as
mergecap | editcap -A/-B | tcpdump -r -w FILTER, with ns timestamps; the catalog the supervisor
built, its rebuild, retention; bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance import catalog, retention
from appliance.config import FreeFloor
from appliance.journal import Journal, read_events
from appliance.lab.harness.mounts import tmpfs
from appliance.timespec import epoch_arg
from tests.catalog.conftest import SLUICE_PCAP, Spool, dump, peer_pipeline, rows, sluice, stamps

pytestmark = [pytest.mark.root, pytest.mark.netns]

FILTERS = ["", "host 192.0.2.1", "net 198.51.100.0/24", "port 8080", "udp port 9999 or icmp6", "vlan",
           "vlan and udp", "icmp", "ip6 and not icmp6", "tcp[tcpflags] & tcp-syn != 0",
           "host 198.51.100.2 and tcp", "host 203.0.113.99", "host 2001:db8::1", "udp port 9999 and host 192.0.2.1"]


def _bounds(spool: Spool) -> list[dict]:
    found = rows(spool.dir)
    assert found and all(r["first_ns"] is not None for r in found if r["packets"])
    return sorted((r for r in found if r["packets"]), key=lambda r: r["first_ns"])


def _windows(spool: Spool) -> dict[str, tuple[int, int, list[str]]]:
    files = _bounds(spool)
    rx0 = [r for r in files if r["interface"] == "rx0"]
    inside = max(rx0, key=lambda r: r["packets"])
    k = max(range(len(rx0) - 1), key=lambda i: min(rx0[i]["packets"], rx0[i + 1]["packets"]))
    a, b = rx0[k], rx0[k + 1]
    first = min(r["first_ns"] for r in files)
    last = max(r["last_ns"] for r in files)
    return {
        "whole spool, both interfaces": (first, last + 1, []),
        "inside one file": (inside["first_ns"] + 1, inside["last_ns"], ["rx0"]),  # all but its first and last
        "across a rotation": ((a["first_ns"] + a["last_ns"]) // 2, (b["first_ns"] + b["last_ns"]) // 2 + 1, ["rx0"]),
        "before the spool (empty)": (first - 10**10, first - 10**9, []),
    }


def _extract(spool: Spool, tmp: Path, from_ns: int, to_ns: int, bpf: str, ifs: list[str]) -> Path:
    out = tmp / "sluice.pcapng"
    args = ["extract", "--spool", str(spool.dir), "--from", epoch_arg(from_ns), "--to", epoch_arg(to_ns),
            "-o", str(out)]
    if bpf:
        args += ["--filter", bpf]
    for i in ifs:
        args += ["--interface", i]
    proc = sluice(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    return out


@pytest.mark.parametrize("window", ["whole spool, both interfaces", "inside one file", "across a rotation",
                                    "before the spool (empty)"])
def test_extract_equals_peer_pipeline(spool: Spool, tmp_path: Path, window: str) -> None:
    from_ns, to_ns, ifs = _windows(spool)[window]
    files = [spool.dir / r["path"] for r in rows(spool.dir) if not ifs or r["interface"] in ifs]
    nonempty = 0
    for bpf in FILTERS:
        ours = dump(_extract(spool, tmp_path, from_ns, to_ns, bpf, ifs))
        theirs = dump(peer_pipeline(files, from_ns, to_ns, bpf, tmp_path))
        assert ours == theirs, f"{window}, filter {bpf!r}: {len(ours.splitlines())} vs {len(theirs.splitlines())} lines"
        nonempty += bool(ours)
    if window.endswith("(empty)"):
        assert nonempty == 0
    else:
        assert nonempty >= 4  # the filters do select real traffic here


def test_extract_keeps_nanoseconds_and_spans_both_interfaces(spool: Spool, tmp_path: Path) -> None:
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    out = _extract(spool, tmp_path, from_ns, to_ns, "icmp", [])
    text = dump(out)
    stamps = [line.split()[0] for line in text.splitlines() if not line.startswith("\t")]
    assert stamps == sorted(stamps, key=lambda s: (int(s.split(".")[0]), int(s.split(".")[1])))
    assert any(not s.endswith("000") for s in stamps)  # not µs in disguise
    assert "192.0.2.1" in text and "198.51.100.1" in text  # both interfaces, merged by time


def test_index_rules_out_files_and_journal_says_who(spool: Spool, tmp_path: Path) -> None:
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    env = dict(os.environ, SUDO_USER="alice")
    args = ["extract", "--spool", str(spool.dir), "--from", epoch_arg(from_ns),
            "--to", epoch_arg(to_ns), "--filter", "host 192.0.2.1", "-o",
            str(tmp_path / "h.pcapng")]
    before = {p: p.stat().st_mtime_ns for p in spool.files()}
    proc = sluice(*args, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    rx1_files = [r for r in rows(spool.dir) if r["interface"] == "rx1" and r["packets"]]
    assert rx1_files
    ev = list(read_events(spool.dir / "journal.jsonl", "extract"))[-1]
    assert ev["user"] == "alice" and ev["sudo"] is True and ev["filter"] == "host 192.0.2.1"
    assert ev["packets"] == len([ln for ln in dump(tmp_path / "h.pcapng").splitlines() if not ln.startswith("\t")])
    assert ev["skipped_by_index"] >= len(rx1_files)  # host 192.0.2.1 is never on rx1
    assert {p: p.stat().st_mtime_ns for p in spool.files()} == before  # the spool is untouched


def test_rare_address_is_read_at_its_positions(spool: Spool, tmp_path: Path) -> None:
    """ping6 is a small share of each rx0 file: those records are read where they are (pick)."""
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    _extract(spool, tmp_path, from_ns, to_ns, "host 2001:db8::1", [])
    ev = list(read_events(spool.dir / "journal.jsonl", "extract"))[-1]
    assert ev["filter"] == "host 2001:db8::1" and ev["picked"] >= 1 and ev["packets"] > 0
    # Positions are written for every file whose records are in time order; the kernel stamps
    # frames on the CPU that receives them, so now and then two of a file are a little out of order.
    for r in rows(spool.dir):
        if not r["positions"]:
            ts = stamps(spool.dir / r["path"])
            assert ts != sorted(ts), f"{r['path']} is in time order but has no positions"


def test_positions_that_no_longer_describe_their_files_give_the_same_extract(spool: Spool, tmp_path: Path) -> None:
    """Positions files changed or gone after the catalog was made: the merge reads those files
    whole instead (one process, no retry), to a file and to stdout alike."""
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    pos = sorted(copy.rglob("*.pos"))
    assert len(pos) >= 2
    for p in pos[1:]:
        with p.open("ab") as f:
            f.write(b"\0")  # no longer the size its header says
    pos[0].unlink()
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    plain = dump(_extract(spool, tmp_path, from_ns, to_ns, "host 2001:db8::1", []))
    out = tmp_path / "stale.pcapng"
    args = ["extract", "--spool", str(copy), "--from", epoch_arg(from_ns), "--to", epoch_arg(to_ns),
            "--filter", "host 2001:db8::1"]
    proc = sluice(*args, "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert dump(out) == plain and plain
    proc = sluice(*args, "-o", "-")
    assert proc.returncode == 0, proc.stderr.decode()
    assert dump("-", stdin=proc.stdout) == plain
    assert list(read_events(copy / "journal.jsonl", "extract"))[-1]["picked"] >= 1  # the positions were tried


def test_stdout_streams_to_tcpdump(spool: Spool, tmp_path: Path) -> None:
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    proc = sluice("extract", "--spool", str(spool.dir), "--from", epoch_arg(from_ns),
                  "--to", epoch_arg(to_ns), "--filter", "port 8080", "-o", "-")
    assert proc.returncode == 0, proc.stderr.decode()
    assert dump("-", stdin=proc.stdout) == dump(_extract(spool, tmp_path, from_ns, to_ns, "port 8080", []))
    assert b"packet(s)" in proc.stderr  # the summary goes to stderr, never into the stream


def test_stdout_closed_by_its_reader_ends_quietly_as_sigpipe(spool: Spool) -> None:
    """`sluice extract -o - | tcpdump -c 3`: the reader leaves early. The pipe's read end is closed
    before the extract starts, so sluice-pcap's first write meets it: exit 141 as a program killed
    by SIGPIPE, nothing on stderr, and the journal keeps the query with why it ended."""
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    r, w = os.pipe()
    os.close(r)
    try:
        proc = sluice("extract", "--spool", str(spool.dir), "--from", epoch_arg(from_ns), "--to", epoch_arg(to_ns),
                      "--filter", "port 8080", "-o", "-", stdout=w)
    finally:
        os.close(w)
    assert proc.returncode == 141, proc.stderr.decode()
    assert proc.stderr == b""
    last = list(read_events(spool.dir / "journal.jsonl", "extract"))[-1]
    assert last["output"] == "-" and last["filter"] == "port 8080" and "closed" in last["error"]


def test_catalog_rows_match_the_files(spool: Spool) -> None:
    found = {r["path"]: r for r in rows(spool.dir)}
    assert sorted(found) == sorted(str(p.relative_to(spool.dir)) for p in spool.files())
    for p in spool.files():
        r = found[str(p.relative_to(spool.dir))]
        assert r["size"] == p.stat().st_size and r["host"] == "lab" and r["interface"] in ("rx0", "rx1")
        assert r["state"] == "closed" and r["indexed"] and r["kernel_drops"] == 0 and r["writer_drops"] == 0
        ts = stamps(p)
        assert r["packets"] == len(ts)
        if ts:
            assert r["first_ns"] == min(ts)
    closed = [e["path"] for e in read_events(spool.dir / "journal.jsonl", "file_closed")]
    assert sorted(str(Path(c).resolve().relative_to(spool.dir.resolve())) for c in closed) == sorted(found)


def test_catalog_ls(spool: Spool) -> None:
    proc = sluice("catalog", "ls", "--spool", str(spool.dir), "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    listed = json.loads(proc.stdout)
    in_order = sorted(rows(spool.dir), key=lambda r: (r["first_ns"] is not None, r["first_ns"] or 0, r["path"]))
    assert [r["path"] for r in listed] == [r["path"] for r in in_order]
    first = _bounds(spool)[0]
    proc = sluice("catalog", "ls", "--spool", str(spool.dir), "--from", str(first["last_ns"] / 1e9 + 0.5),
                  "--to", "now")
    text = proc.stdout.decode()
    assert proc.returncode == 0 and first["path"] not in text and "closed" in text


def test_rebuild_gives_the_same_rows(spool: Spool, tmp_path: Path) -> None:
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    live = rows(copy)
    for suffix in ("", "-wal", "-shm"):
        (copy / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    proc = sluice("catalog", "rebuild", "--spool", str(copy))
    assert proc.returncode == 0, proc.stderr.decode()
    assert rows(copy) == live
    # without the sidecars, and from a damaged database: the same rows again
    shutil.rmtree(copy / catalog.INDEX_DIR)
    (copy / "catalog.sqlite").write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (copy / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    proc = sluice("catalog", "rebuild", "--spool", str(copy))
    assert proc.returncode == 0, proc.stderr.decode()
    assert rows(copy) == live
    assert list(copy.glob("catalog.sqlite.damaged-*"))


def test_retention_removes_the_row(spool: Spool, tmp_path: Path) -> None:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    with tmpfs(mnt, "256M"):  # a filesystem of its own: free space no one else changes
        copy = mnt / "spool"
        shutil.copytree(spool.dir, copy, symlinks=True)
        before = rows(copy)
        oldest = min((p for p in copy.rglob("*.pcapng")), key=lambda p: (p.stat().st_mtime, p.name))
        free = shutil.disk_usage(copy).free
        with Journal(copy / "journal.jsonl") as j:
            result = retention.enforce(copy, FreeFloor(nbytes=free + 1), FreeFloor(nbytes=0), j)
        assert [f.path for f in result.deleted] == [oldest]
        rel = str(oldest.relative_to(copy))
        assert [r["path"] for r in rows(copy)] == [r["path"] for r in before if r["path"] != rel]
        assert not catalog.sidecar_path(copy, rel).exists() and not catalog.positions_path(copy, rel).exists()


@pytest.mark.parametrize("args, exit_code, says", [
    (["--from", "yesterday-ish"], 2, "--from 'yesterday-ish' is not a time"),
    (["--from", "2026-02-30T00:00:00Z"], 2, "no such date"),
    (["--from", "-1m", "--to", "-2m"], 2, "is not before"),
    (["--from", "-1h", "--filter", "host 192.0.2.1 and ("], 2, "--filter"),
    (["--from", "-1h", "--filter", "portt 80"], 2, "--filter"),
])
def test_bad_input_one_line_exit_2_nothing_written(spool: Spool, tmp_path: Path, args: list[str], exit_code: int,
                                                   says: str) -> None:
    out = tmp_path / "out.pcapng"
    proc = sluice("extract", "--spool", str(spool.dir), *args, "-o", str(out))
    err = proc.stderr.decode()
    assert proc.returncode == exit_code and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_and_output_in_spool(spool: Spool, tmp_path: Path) -> None:
    for out, says in ((tmp_path / "missing" / "x.pcapng", "no such directory"),
                      (spool.dir / "x.pcapng", "inside the spool")):
        proc = sluice("extract", "--spool", str(spool.dir), "--from", "-1d", "-o", str(out))
        err = proc.stderr.decode()
        assert proc.returncode == 2 and says in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_no_data_is_zero_packets_exit_0(spool: Spool, tmp_path: Path) -> None:
    for args in (["--from", "2001-01-01T00:00:00Z", "--to", "2001-01-01T00:05:00Z"],
                 ["--from", "-1d", "--filter", "host 203.0.113.99"]):
        out = tmp_path / "none.pcapng"
        proc = sluice("extract", "--spool", str(spool.dir), *args, "-o", str(out))
        assert proc.returncode == 0, proc.stderr.decode()
        assert b"0 packet(s)" in proc.stderr
        assert dump(out) == ""


def test_compressed_files_give_the_same_extract(spool: Spool, tmp_path: Path) -> None:
    """zstd files have no positions (offsets in a compressed stream are not file offsets): they
    are read through, with the same result."""
    copy = tmp_path / "spool"
    shutil.copytree(spool.dir, copy, symlinks=True)
    for p in list(copy.rglob("*.pcapng")):
        zst = p.with_name(p.name + ".zst")
        subprocess.run([str(SLUICE_PCAP), "convert", "--compress", "zstd", str(p), str(zst)], check=True,
                       capture_output=True)
        p.unlink()
    assert sluice("catalog", "rebuild", "--spool", str(copy)).returncode == 0
    assert all(r["compressed"] and not r["positions"] for r in rows(copy))
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    for bpf in ("host 2001:db8::1", "udp port 9999", "vlan"):
        plain = dump(_extract(spool, tmp_path, from_ns, to_ns, bpf, []))
        out = tmp_path / "z.pcapng"
        proc = sluice("extract", "--spool", str(copy), "--from", epoch_arg(from_ns), "--to", epoch_arg(to_ns),
                      "--filter", bpf, "-o", str(out))
        assert proc.returncode == 0, proc.stderr.decode()
        assert dump(out) == plain and plain


def test_format_pcap_for_old_tools(spool: Spool, tmp_path: Path) -> None:
    from_ns, to_ns, _ = _windows(spool)["whole spool, both interfaces"]
    out = tmp_path / "old.pcap"
    proc = sluice("extract", "--spool", str(spool.dir), "--from", epoch_arg(from_ns), "--to", epoch_arg(to_ns),
                  "--filter", "icmp", "--format", "pcap", "-o", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes()[:4] == bytes.fromhex("4d3cb2a1")  # pcap, nanosecond magic
    assert dump(out) == dump(_extract(spool, tmp_path, from_ns, to_ns, "icmp", []))
