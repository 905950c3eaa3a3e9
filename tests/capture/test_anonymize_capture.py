"""sluice-capture --anonymize (issue 17): Crypto-PAn in the writer's per-packet stage. On real
lab traffic (IPv4, IPv6, ARP, neighbour discovery, ICMP errors, HTTP), a file anonymised at capture
has the very packet records of the plain capture anonymised afterwards by sluice-pcap with the same
key; no original address is left in its bytes; the SHB names the key id, never the key. A bad key
file: one line, exit 2, nothing captured."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.lab import netns
from tests.capture.capfiles import read_capture
from tests.capture.conftest import mixed_traffic, start_writer
from tests.conftest import SLUICE_PCAP

pytestmark = [pytest.mark.root, pytest.mark.netns]

# UDP to a closed port, both families: the kernel answers with ICMP errors quoting our headers
CLOSED_PORT = r"""
import socket, sys
for family, addr in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    s = socket.socket(family, socket.SOCK_DGRAM)
    for i in range(5):
        s.sendto(b"probe %d" % i, (addr, 33434))
"""


# UDP datagrams whose payload marks the start and the end of the traffic both writers surely saw
# (an IPv6 reachability probe may come between the two writers' stops); their payload stays
# readable after anonymisation, unlike a frame of an unknown ethertype, which is left out.
MARK = r"""
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[2].encode(), (sys.argv[1], 9))
"""


def between(recs: list, start: bytes = b"sluice-mark-start", end: bytes = b"sluice-mark-end") -> list:
    idx = {m: i for i, r in enumerate(recs) for m in (start, end) if r[-1].endswith(m)}
    assert start in idx and end in idx, "marker datagrams missing"
    return recs[idx[start] + 1: idx[end]]


def key_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def records(files: list[Path]) -> list[tuple[int, int, bytes]]:
    return [(p.ts_ns, p.origlen, p.data) for f in sorted(files) for p in read_capture(f).packets]


def test_anonymised_at_capture_equals_anonymised_afterwards(capture_binary, link, tmp_path: Path) -> None:  # noqa: ANN001
    key = key_file(tmp_path / "cryptopan.key", os.urandom(32))
    plain_dir, anon_dir = tmp_path / "plain", tmp_path / "anon"
    plain_dir.mkdir()
    anon_dir.mkdir()
    plain = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(plain_dir)])
    anon = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(anon_dir), "--anonymize", str(key)])
    try:
        plain.wait_ready()
        anon.wait_ready()
        netns.run_in(link.h, [sys.executable, "-c", MARK, link.cap_ip, "sluice-mark-start"])
        mixed_traffic(link)
        netns.run_in(link.h, [sys.executable, "-c", CLOSED_PORT, link.cap_ip, link.cap_ip6])
        netns.run_in(link.h, [sys.executable, "-c", MARK, link.cap_ip, "sluice-mark-end"])
    finally:
        assert anon.stop() == 0 and plain.stop() == 0
    assert anon.final()["writer_drops"] == 0 and plain.final()["writer_drops"] == 0
    plain_files, anon_files = sorted(plain_dir.glob("*.pcapng")), sorted(anon_dir.glob("*.pcapng"))
    afterwards = tmp_path / "afterwards.pcapng"
    merged = tmp_path / "plain.pcapng"
    assert len(plain_files) == 1, plain_files  # one file each: one offline run covers it
    merged.write_bytes(plain_files[0].read_bytes())
    p = subprocess.run([str(SLUICE_PCAP), "anonymize", "--key-file", str(key), str(merged), str(afterwards)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # two sockets stamp the same frame apart by a microsecond or so: the frames themselves compare
    at_capture = between([(n, d) for _, n, d in records(anon_files)])
    offline = between([(n, d) for _, n, d in records([afterwards])])
    assert len(at_capture) == len(offline) > 100
    assert at_capture == offline, "the writer's anonymisation differs from sluice-pcap's"
    # and the same capture replayed through the writer: every record equal, timestamps included
    replay_dir = tmp_path / "replay"
    replay_dir.mkdir()
    r = subprocess.run([str(capture_binary), "-r", str(merged), "-w", str(replay_dir), "--anonymize", str(key)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert records(sorted(replay_dir.glob("*.pcapng"))) == records([afterwards])
    # what the traffic held: IPv4, IPv6, ARP, neighbour solicitations, ICMP errors of both kinds
    plain_bytes = b"".join(d for _, _, d in records(plain_files))
    kinds = subprocess.run(["tshark", "-r", str(plain_files[0]), "-T", "fields", "-e", "frame.protocols",
                            "-e", "icmp.type", "-e", "icmpv6.type"], capture_output=True, text=True,
                           check=True).stdout
    assert ":arp" in kinds and "\t3\t" in kinds and "\t\t1" in kinds and "\t\t135" in kinds, kinds[:2000]
    # no original address anywhere in the anonymised file's bytes
    anon_bytes = b"".join(f.read_bytes() for f in anon_files)
    for addr in (link.h_ip, link.cap_ip, link.h_ip6, link.cap_ip6):
        packed = ipaddress.ip_address(addr).packed
        assert packed in plain_bytes, addr
        assert packed not in anon_bytes, f"{addr} left in clear"
    # the SHB says which key, never the key
    shb = read_capture(anon_files[0]).shb_options
    text = b"".join(v for values in shb.values() for v in values)
    key_id = p.stdout.split("key id ")[-1].split()[0].rstrip(",")
    assert key_id.encode() in text and key.read_bytes() not in anon_bytes


@pytest.mark.parametrize(("content", "mode", "message"), [
    (os.urandom(16), 0o600, "holds 16 bytes"),
    (os.urandom(32), 0o644, "may be read by group or others"),
    (None, 0o600, "No such file"),
])
def test_a_bad_key_file_is_one_line_exit_2_and_nothing_captured(capture_binary, tmp_path: Path, content: bytes | None,  # noqa: ANN001
                                                                mode: int, message: str) -> None:
    key = tmp_path / "cryptopan.key"
    if content is not None:
        key_file(key, content, mode)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(out), "--anonymize", str(key)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
    assert not list(out.iterdir()), "something was written"


def test_anonymize_needs_pcapng(capture_binary, tmp_path: Path) -> None:  # noqa: ANN001
    key = key_file(tmp_path / "k", os.urandom(32))
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), "--format", "pcap", "--anonymize",
                        str(key)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--format pcapng" in p.stderr
