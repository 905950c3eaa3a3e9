"""The pcap and pcapng files that tcpdump and libpcap ship for their own tests (Debian 12's
source packages, unpacked by scripts/fetch-pcap-corpus into /var/cache/sluice-test/corpus with
their licences; `make test` installs it), read as the peers read them (issue 12).

- every file: sluice-pcap reads it in full exactly when libpcap does (tcpdump -r), and says why
  not when it does not; packet counts and wire bytes equal capinfos'; every timestamp equals
  libpcap's to the nanosecond (tcpdump --time-stamp-precision=nano) where the file's fraction
  field is in range (the peers print out-of-range fractions wrapped at 2^32; we carry them over);
- every readable file converted pcap <-> pcapng and back keeps every packet, time and length
  (judged by capread.py, a reader of our own, not sluice-pcap's);
- every readable file anonymised: tshark finds none of the original addresses in it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import SLUICE_PCAP, require_tool
from tests.pcaptool import capread
from tests.pcaptool.test_fidelity import KEY_HEX

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("SLUICE_PCAP_CORPUS", "/var/cache/sluice-test/corpus"))
# Wireshark leaves a link-layer pseudo-header out of a frame's length for these (SunATM).
PSEUDO_HEADER_LINKTYPES = {123}
# Files read differently from libpcap on purpose, each with the reason `check` gives.
DIFFERENT = {
    "smb_data_print-segv.pcapng": "beyond what 64-bit nanoseconds hold",  # a packet stamped in the year 4139
}


@pytest.fixture(scope="module")
def corpus() -> list[Path]:
    if not (CORPUS / ".complete").exists():
        if os.geteuid() != 0:
            pytest.skip(f"no corpus in {CORPUS}: run scripts/fetch-pcap-corpus as root once")
        subprocess.run([str(REPO / "scripts" / "fetch-pcap-corpus"), str(CORPUS)], check=True)
    files = sorted(p for p in CORPUS.glob("*/*") if p.suffix in (".pcap", ".pcapng"))
    assert len(files) > 500 and all((p.parent / "LICENSE").exists() for p in files)
    return files


def _pmap(fn, items):  # noqa: ANN001, ANN202
    with ThreadPoolExecutor(max_workers=2) as ex:
        return list(ex.map(fn, items))


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, errors="replace")


def _ours(path: Path) -> tuple[int, dict | None, str]:
    proc = _run([str(SLUICE_PCAP), "info", "--json", str(path)])
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def _libpcap_reads(path: Path) -> bool:
    return subprocess.run(["tcpdump", "-r", str(path), "-w", "-"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=120).returncode == 0


def _capinfos(path: Path) -> tuple[int, int] | None:
    proc = _run(["capinfos", "-T", "-r", "-c", "-d", "-M", str(path)])
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    _, count, size = proc.stdout.strip().split("\t")[:3]
    return int(count), int(size)


def _libpcap_times(path: Path) -> list[int]:
    proc = _run(["tcpdump", "-r", str(path), "-tt", "-nn", "-q", "--time-stamp-precision=nano"])
    out = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^(\d+)\.(\d{9}) ", line)
        if m:
            out.append(int(m[1]) * 10**9 + int(m[2]))
    return out


def test_corpus_read_as_libpcap_and_wireshark_read_it(corpus: list[Path]) -> None:
    require_tool("tcpdump")
    require_tool("capinfos")
    ours = _pmap(_ours, corpus)
    libpcap = _pmap(_libpcap_reads, corpus)
    peers = _pmap(_capinfos, corpus)
    problems = []
    for path, (rc, info, err), lp_ok, cap in zip(corpus, ours, libpcap, peers, strict=True):
        name = path.relative_to(CORPUS)
        if path.name in DIFFERENT:
            check = _run([str(SLUICE_PCAP), "check", str(path)])
            if check.returncode != 1 or DIFFERENT[path.name] not in check.stdout + check.stderr:
                problems.append(f"{name}: check does not say '{DIFFERENT[path.name]}'")
            continue
        if (rc == 0) != lp_ok:
            problems.append(f"{name}: libpcap {'reads' if lp_ok else 'refuses'} it, we exit {rc}: {err.strip()}")
            continue
        if rc != 0:
            # Refused like libpcap: check names the cause in one line.
            check = _run([str(SLUICE_PCAP), "check", str(path)])
            if check.returncode == 0 or len((check.stdout + check.stderr).strip().splitlines()) != 1:
                problems.append(f"{name}: check does not say why: {check.stdout}{check.stderr}")
            continue
        assert info is not None
        if cap is not None:
            lts = {lt["linktype"] for lt in info["link_types"]}
            if info["packets"] != cap[0] or (info["wire_bytes"] != cap[1] and not lts & PSEUDO_HEADER_LINKTYPES):
                problems.append(f"{name}: {info['packets']} packets {info['wire_bytes']} bytes, capinfos {cap}")
    assert problems == [], "\n".join(problems)


def test_corpus_timestamps_to_the_nanosecond(corpus: list[Path], tmp_path: Path) -> None:
    require_tool("tcpdump")

    def one(path: Path) -> str | None:
        if _run([str(SLUICE_PCAP), "check", str(path)]).returncode != 0:
            return None
        packets, in_range = capread.read(path)
        if not in_range:
            return None
        ns = tmp_path / (path.name + ".ns.pcap")
        conv = _run([str(SLUICE_PCAP), "convert", "--format", "pcap", "--precision", "ns", str(path), str(ns)])
        if conv.returncode != 0:
            return None if "one link type" in conv.stderr or "no timestamp" in conv.stderr else conv.stderr
        ours = [ts for ts, *_ in capread.read(ns)[0]]
        theirs = _libpcap_times(path)
        ns.unlink()
        if len(theirs) != len(ours):
            return None  # tcpdump printed a packet on more than one line: nothing to compare by line
        return None if ours == theirs else f"{path.name}: times differ from libpcap's"

    problems = [p for p in _pmap(one, corpus) if p]
    assert problems == [], "\n".join(problems)


def test_corpus_converted_both_ways_keeps_every_packet(corpus: list[Path], tmp_path: Path) -> None:
    def one(path: Path) -> str | None:
        if _run([str(SLUICE_PCAP), "check", str(path)]).returncode != 0:
            return None
        original, _ = capread.read(path)
        other = "pcapng" if path.suffix == ".pcap" else "pcap"
        mid, back = tmp_path / f"{path.name}.mid", tmp_path / f"{path.name}.back"
        first = _run([str(SLUICE_PCAP), "convert", "--format", other, str(path), str(mid)])
        if first.returncode != 0:
            # pcap holds one link type and no "no time": refused in one line, nothing written.
            ok = any(why in first.stderr for why in ("one link type", "no timestamp", "pcap cannot hold"))
            ok = ok and not mid.exists()
            return None if ok else f"{path.name}: {first.stderr.strip()}"
        second = _run([str(SLUICE_PCAP), "convert", "--format", path.suffix[1:], str(mid), str(back)])
        if second.returncode != 0:
            # A pcap second field of 2^32-1 with a fraction carried over is after 2106 once read.
            if "pcap cannot hold" in second.stderr and not back.exists():
                mid.unlink()
                return None
            return f"{path.name}: back: {second.stderr.strip()}"
        got_mid, got_back = capread.read(mid)[0], capread.read(back)[0]
        mid.unlink()
        back.unlink()
        if got_mid != original or got_back != original:
            return f"{path.name}: packets changed in conversion"
        return None

    problems = [p for p in _pmap(one, corpus) if p]
    assert problems == [], "\n".join(problems)


def _addresses(path: Path) -> set[str]:
    proc = _run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,", "-e", "ip.addr", "-e", "ipv6.addr",
                 "-e", "arp.src.proto_ipv4", "-e", "arp.dst.proto_ipv4"])
    found = set()
    for line in proc.stdout.splitlines():
        found.update(a for a in re.split(r"[,\s]+", line) if a)
    return found - {"0.0.0.0", "::", "255.255.255.255"}


def test_corpus_anonymised_holds_no_clear_address(corpus: list[Path], tmp_path: Path) -> None:
    """The readable files merged in groups (one tshark run per group, not per file), anonymised
    with --payload drop: tshark finds none of the original addresses in the anonymised copy, and
    every packet is either written or counted as left out."""
    require_tool("tshark")
    key = tmp_path / "key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    readable = [p for p, ok in zip(corpus, _pmap(lambda p: _run([str(SLUICE_PCAP), "check", str(p)]).returncode == 0,
                                                  corpus), strict=True) if ok]

    def one(group: tuple[int, list[Path]]) -> str | None:
        k, paths = group
        merged, anon = tmp_path / f"group{k}.pcapng", tmp_path / f"group{k}.anon.pcapng"
        proc = _run([str(SLUICE_PCAP), "merge", "--format", "pcapng", "-o", str(merged), *map(str, paths)])
        if proc.returncode != 0:
            return f"group {k}: merge: {proc.stderr.strip()}"
        # --payload drop: addresses inside application payloads (sFlow samples, NSH, DNS answers)
        # are not the tool's to find; what it promises is every address of the headers.
        proc = _run([str(SLUICE_PCAP), "anonymize", "--json", "--payload", "drop", "--key-file", str(key),
                     str(merged), str(anon)])
        if proc.returncode != 0:
            return f"group {k}: {proc.stderr.strip()}"
        s = json.loads(proc.stdout)
        if s["packets_out"] + s["unparsed_left_out"] != s["packets_in"]:
            return f"group {k}: packets lost without a count: {s}"
        clear = _addresses(merged) & _addresses(anon)
        return f"group {k}: still in clear: {sorted(clear)[:10]}" if clear else None

    groups = [(k, readable[i:i + 60]) for k, i in enumerate(range(0, len(readable), 60))]
    problems = [p for p in _pmap(one, groups) if p]
    assert problems == [], "\n".join(problems)
