"""merge against mergecap (same bytes, same order but for equal timestamps), --offset, mixed link
types; convert. On a tie mergecap puts the later input first and we the earlier one (chosen and
tested in test_fidelity), so records of equal time are compared as a set."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.pcaptool.pcapfiles import packets, parse_pcap, run, time_groups

pytestmark = [pytest.mark.root, pytest.mark.netns]


def test_merge_same_bytes_as_mergecap(captures, tmp_path):
    inputs = [captures.span_ns, captures.host_ns, captures.span_us]
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "mergecap.pcap"
    summary = json.loads(run("merge", "--json", "-o", ours, *inputs, check=True).stdout)
    subprocess.run(["mergecap", "-F", "nsecpcap", "-w", str(theirs), *map(str, inputs)], check=True)
    assert summary["packets_out"] == sum(len(packets(p, tmp_path)) for p in inputs)
    ours_b, theirs_b = ours.read_bytes(), theirs.read_bytes()
    assert len(ours_b) == len(theirs_b) and ours_b[:24] == theirs_b[:24]
    assert time_groups(parse_pcap(ours_b).records) == time_groups(parse_pcap(theirs_b).records)


def test_merge_microsecond_inputs_stay_microsecond(captures, tmp_path):
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "mergecap.pcap"
    run("merge", "-o", ours, captures.span_us, captures.span_us, check=True)
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(theirs), str(captures.span_us), str(captures.span_us)],
                   check=True)
    assert ours.read_bytes() == theirs.read_bytes()


def test_merge_offset_corrects_a_clock(captures, tmp_path):
    late = tmp_path / "late.pcap"
    subprocess.run(["editcap", "-t", "2.5", str(captures.host_ns), str(late)], check=True, capture_output=True)
    fixed, reference = tmp_path / "fixed.pcap", tmp_path / "ref.pcap"
    run("merge", "--offset", f"{late}=-2.5", "-o", fixed, captures.span_ns, late, check=True)
    run("merge", "-o", reference, captures.span_ns, captures.host_ns, check=True)
    assert packets(fixed, tmp_path) == packets(reference, tmp_path)
    unfixed = tmp_path / "unfixed.pcap"
    run("merge", "-o", unfixed, captures.span_ns, late, check=True)
    assert packets(unfixed, tmp_path) != packets(reference, tmp_path)


def test_merge_mixed_link_types_gives_pcapng_with_one_idb_each(captures, tmp_path):
    raw = tmp_path / "raw.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", "-C", "14", "-T", "rawip", str(captures.host_ns), str(raw)],
                   check=True, capture_output=True)
    out = tmp_path / "mixed.pcapng"
    summary = json.loads(run("merge", "--json", "-o", out, captures.span_ns, raw, check=True).stdout)
    assert summary["interfaces"] == 2
    info = json.loads(run("info", "--json", out, check=True).stdout)
    assert info["format"] == "pcapng" and info["interfaces"] == 2
    encaps = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.interface_id",
                             "-e", "frame.encap_type"], capture_output=True, text=True, check=True).stdout
    pairs = {tuple(line.split("\t")) for line in encaps.splitlines()}
    assert len(pairs) == 2 and {p[0] for p in pairs} == {"0", "1"}
    # Same order as mergecap gives.
    theirs = tmp_path / "mergecap.pcapng"
    subprocess.run(["mergecap", "-w", str(theirs), str(captures.span_ns), str(raw)], check=True)
    times = ["tshark", "-r", "{}", "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len"]
    ours_t = subprocess.run([a.format(out) for a in times], capture_output=True, text=True, check=True).stdout
    peer_t = subprocess.run([a.format(theirs) for a in times], capture_output=True, text=True, check=True).stdout
    assert time_groups([line.split("\t") for line in ours_t.splitlines()], 1) == \
        time_groups([line.split("\t") for line in peer_t.splitlines()], 1)


def test_convert_round_trip(captures, tmp_path):
    ng, zst, back = tmp_path / "a.pcapng", tmp_path / "a.pcapng.zst", tmp_path / "back.pcap"
    run("convert", "--format", "pcapng", captures.span_ns, ng, check=True)
    run("convert", "--compress", "zstd", ng, zst, check=True)
    run("convert", "--format", "pcap", "--compress", "none", zst, back, check=True)
    assert back.read_bytes() == captures.span_ns.read_bytes()
    assert packets(ng, tmp_path) == packets(captures.span_ns, tmp_path)  # tshark's library reads it
    info = json.loads(run("info", "--json", zst, check=True).stdout)
    assert info["compressed"] and info["format"] == "pcapng" and info["precision"] == "ns"


def test_convert_to_microseconds_same_as_editcap(captures, tmp_path):
    ours, theirs = tmp_path / "us.pcap", tmp_path / "editcap.pcap"
    run("convert", "--precision", "us", captures.span_ns, ours, check=True)
    subprocess.run(["editcap", "-F", "pcap", str(captures.span_ns), str(theirs)], check=True, capture_output=True)
    assert ours.read_bytes() == theirs.read_bytes()


def test_convert_multi_interface_pcapng_to_pcap_refused(captures, tmp_path):
    out = tmp_path / "x.pcap"
    proc = run("convert", "--format", "pcap", captures.mixed_ng, out)
    assert proc.returncode == 1
    assert "pcapng" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
