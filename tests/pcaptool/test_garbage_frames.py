"""Every packet-reading subcommand, built with ASan/UBSan, over frames that are real packets with
random bytes flipped, cut at random lengths, or pure noise: no crash, no sanitizer report, and
the packet count is kept (anonymize and dedup never lose a packet they cannot parse)."""

from __future__ import annotations

import random
import re
import subprocess

import pytest

from tests.conftest import REPO
from tests.pcaptool.pcapfiles import build_pcap, parse_pcap

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture(scope="module")
def asan_pcap():
    subprocess.run(["flock", "/tmp/sluice-native.lock", "make", "-C", str(REPO / "native"), "asan"],
                   check=True, capture_output=True, timeout=900)
    return REPO / "native" / "build" / "asan" / "sluice-pcap"


def _mangled(captures, tmp_path, linktype: int):
    pf = parse_pcap(captures.span_ns.read_bytes())
    rnd = random.Random(linktype)
    records = []
    for sec, frac, _, _, data in pf.records * 4:
        b = bytearray(data)
        kind = rnd.randrange(4)
        if kind == 0:
            for _ in range(rnd.randrange(1, 8)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif kind == 1:
            b = b[: rnd.randrange(len(b) + 1)]
        elif kind == 2:
            b = bytearray(rnd.randbytes(rnd.randrange(0, 200)))
        else:
            # IPv4 header length / IPv6 next header / VLAN tag nonsense
            if len(b) > 20:
                b[14] = rnd.randrange(256)
                b[12:14] = rnd.choice([b"\x81\x00", b"\x86\xdd", b"\x08\x00", b"\x08\x06"])
        records.append((sec, frac, len(b), max(len(b), 1), bytes(b)))
    pf.linktype = linktype
    path = tmp_path / f"mangled{linktype}.pcap"
    path.write_bytes(build_pcap(pf, records))
    return path, len(records)


@pytest.mark.parametrize("linktype", [1, 101, 113, 276])
def test_mangled_frames_under_sanitizers(asan_pcap, captures, tmp_path, linktype):
    src, count = _mangled(captures, tmp_path, linktype)
    key = tmp_path / "key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    runs = {
        "anonymize": ["anonymize", "--key-file", str(key), str(src), str(tmp_path / "a.pcapng")],
        "anonymize-drop": ["anonymize", "--payload", "drop", "--key-file", str(key), str(src),
                           str(tmp_path / "b.pcapng")],
        "dedup": ["dedup", "--ignore-vlan", str(src), str(tmp_path / "c.pcap")],
        "flows": ["flows", "-o", str(tmp_path / "d.csv"), str(src)],
        "ipfix": ["flows", "--format", "ipfix", "-o", str(tmp_path / "e.ipfix"), str(src)],
        "repair": ["repair", str(src), str(tmp_path / "f.pcap")],
    }
    for name, argv in runs.items():
        proc = subprocess.run([str(asan_pcap), *argv], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        assert proc.stderr == "", f"{name}: {proc.stderr[-2000:]}"
        if name.startswith("anonymize"):
            # A mangled frame that cannot be parsed to its addresses is left out, and counted.
            m = re.search(r"packets in (\d+), out (\d+),.* (\d+) packets left out", proc.stdout)
            assert m, proc.stdout
            assert int(m[1]) == count and int(m[2]) + int(m[3]) == count and int(m[3]) > 0
