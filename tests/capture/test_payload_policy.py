"""The writer's payload policy (issue 17): `--slice header --keep-payload FILTER` keeps headers
only except for the packets FILTER names, which are kept whole; `--drop-payload FILTER` the reverse.
Two writers on one veth see real DNS (dig asking a dnsmasq) among HTTP, pings, UDP and tagged
frames; tshark reads what each kept and the IDB description that names the policy."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab import netns
from tests.capture.conftest import mixed_traffic, start_writer

pytestmark = [pytest.mark.root, pytest.mark.netns]

DNS = "udp port 53"
NAME = "policy.sluice.test"
UDP_HEADERS = 14 + 20 + 8  # Ethernet, IPv4 without options, UDP


def frames(path: Path) -> list[tuple[int, int, bool, str]]:
    """(frame length, captured length, DNS?, query name) of every frame, as tshark reads them."""
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|", "-e", "frame.len",
                          "-e", "frame.cap_len", "-e", "udp.port", "-e", "dns.qry.name"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        length, caplen, ports, qname = line.split("|")
        rows.append((int(length), int(caplen), "53" in ports.split(","), qname))
    return rows


def description(path: Path) -> str:
    out = subprocess.run(["tshark", "-r", str(path), "-c", "1", "-T", "fields", "-e", "frame.interface_description"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return out.strip()


def dns_exchange(link) -> None:  # noqa: ANN001
    """A real resolver and a real client: dnsmasq in the capture side, dig on the host side."""
    server = subprocess.Popen(netns.exec_argv(link.cap, [
        "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
        f"--listen-address={link.cap_ip}", f"--host-record={NAME},192.0.2.99", "--user=root", "--pid-file=",
        "--log-facility=/dev/null", "--port", "53"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(50):
            got = netns.run_in(link.h, ["dig", f"@{link.cap_ip}", NAME, "A", "+short", "+tries=1", "+time=1"],
                               check=False)
            if got.stdout.strip() == "192.0.2.99":
                break
            time.sleep(0.1)
        assert got.stdout.strip() == "192.0.2.99", got.stdout + got.stderr
        for _ in range(3):
            netns.run_in(link.h, ["dig", f"@{link.cap_ip}", NAME, "A", "+short", "+tries=1", "+time=1"])
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_dns_keeps_its_payload_and_the_rest_is_cut_at_the_headers_and_the_reverse(
        capture_binary, link, tmp_path: Path) -> None:  # noqa: ANN001
    keep_dir, drop_dir = tmp_path / "keep", tmp_path / "drop"
    keep_dir.mkdir()
    drop_dir.mkdir()
    keep = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(keep_dir), "--slice", "header",
                                                   "--keep-payload", DNS])
    drop = start_writer(capture_binary, link.cap, ["-i", link.rx, "-w", str(drop_dir), "--drop-payload", DNS])
    try:
        keep.wait_ready()
        drop.wait_ready()
        dns_exchange(link)
        mixed_traffic(link)
    finally:
        assert keep.stop() == 0 and drop.stop() == 0
    (keep_file,), (drop_file,) = list(keep_dir.glob("*.pcapng")), list(drop_dir.glob("*.pcapng"))
    kept, dropped = frames(keep_file), frames(drop_file)
    for rows in (kept, dropped):
        assert sum(1 for r in rows if r[2]) >= 8, "dig's queries and answers are missing"
        assert sum(1 for r in rows if not r[2] and r[0] > 200) >= 10, "the other traffic is missing"
    # --slice header --keep-payload: DNS whole (tshark reads the query name), the rest headers only
    for length, caplen, is_dns, qname in kept:
        if is_dns:
            assert caplen == length and qname == NAME, (length, caplen, qname)
        elif length > 200:
            assert caplen < length and caplen <= 14 + 8 + 60 + 60, (length, caplen)
    # --drop-payload: DNS cut at its UDP header (no query left), the rest whole
    for length, caplen, is_dns, qname in dropped:
        if is_dns:
            assert caplen == UDP_HEADERS < length and qname == "", (length, caplen, qname)
        else:
            assert caplen == length, (length, caplen)
    assert f"; slice header except '{DNS}' (whole frames)" in description(keep_file), description(keep_file)
    assert f"; whole frames except '{DNS}' (slice header)" in description(drop_file), description(drop_file)


@pytest.mark.parametrize(("args", "message"), [
    (["--keep-payload", DNS], "--keep-payload needs --slice header"),
    (["--slice", "header", "--drop-payload", DNS], "give --keep-payload for the exceptions"),
    (["--slice", "header", "--keep-payload", DNS, "--drop-payload", "tcp"], "give one of --keep-payload"),
    (["--slice", "header", "--keep-payload", "udp port nonsense"], "--keep-payload: bad filter"),
])
def test_a_bad_payload_policy_is_one_line_exit_2(capture_binary, tmp_path: Path, args: list[str],  # noqa: ANN001
                                                 message: str) -> None:
    p = subprocess.run([str(capture_binary), "-i", "lo", "-w", str(tmp_path), *args], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
    assert not list(tmp_path.glob("*.pcapng*")), "something was written"
