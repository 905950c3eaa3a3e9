"""Lease files of ISC dhcpd and Kea (the formats their documentation gives) normalised like
dnsmasq's; bad [meta] config and bad lease files give one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.errors import SluiceError
from appliance.meta import dhcp
from tests.conftest import REPO

ISC = """# The format of this file is documented in the dhcpd.leases(5) manual page.
lease 192.0.2.10 {
  starts 0 2026/11/29 09:00:00;
  ends 0 2026/11/29 10:00:00;
  binding state active;
  hardware ethernet 02:00:00:AA:BB:01;
  client-hostname "printer";
}
lease 192.0.2.10 {
  starts 0 2026/11/29 09:30:00;
  ends 0 2026/11/29 10:30:00;
  hardware ethernet 02:00:00:aa:bb:01;
  client-hostname "printer";
}
lease 192.0.2.11 {
  starts 0 2026/11/29 09:00:00;
  ends never;
  hardware ethernet 02:00:00:aa:bb:02;
}
"""
KEA = """address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context
192.0.2.20,02:00:00:cc:dd:01,,3600,1795942800,1,0,0,laptop,0,
192.0.2.21,02:00:00:cc:dd:02,,600,1795940000,1,0,0,,0,
"""


def test_isc_and_kea() -> None:
    isc = sorted(dhcp.parse_isc(ISC), key=lambda r: r["address"])
    assert isc == [
        {"mac": "02:00:00:aa:bb:01", "address": "192.0.2.10", "hostname": "printer",
         "start": 1795944600.0, "end": 1795948200.0},  # the later block wins
        {"mac": "02:00:00:aa:bb:02", "address": "192.0.2.11", "hostname": None, "start": 1795942800.0, "end": None}]
    kea = dhcp.parse_kea(KEA)
    assert kea[0] == {"mac": "02:00:00:cc:dd:01", "address": "192.0.2.20", "hostname": "laptop",
                      "start": 1795939200.0, "end": 1795942800.0}
    assert kea[1]["hostname"] is None and kea[1]["start"] == 1795939400.0
    assert dhcp.to_csv(kea).splitlines()[2] == "02:00:00:cc:dd:02,192.0.2.21,,1795939400.0,1795940000.0"
    assert dhcp.parse_dnsmasq("1795942800 02:00:00:ee:ff:01 192.0.2.30 * 01:02\n")[0]["hostname"] is None


@pytest.mark.parametrize("parser,text,words", [
    (dhcp.parse_dnsmasq, "garbage line\n", "line 1"),
    (dhcp.parse_kea, "a,b\n1,2\n", "no header"),
    (dhcp.parse_isc, "lease 192.0.2.1 { starts 0 tomorrow; }", "a time is not"),
])
def test_bad_lease_files(parser, text: str, words: str) -> None:  # noqa: ANN001
    with pytest.raises(SluiceError, match=words):
        parser(text)


def test_bad_config(tmp_path: Path) -> None:
    for body, words in (('[[meta.sources]]\nname = "x"\nkind = "ftp"\n', "[meta] sources"),
                        ('alertmanager = "ftp://x"\n', "[meta] alertmanager")):
        config = tmp_path / "sluice.toml"
        config.write_text(f'[capture]\ninterfaces = ["eth9"]\nspool = "{tmp_path}"\n[meta]\n{body}')
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", "meta", "collect", "--config", str(config)],
                              cwd=REPO, capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr


def test_the_pipeline_backs_metadata_up(tmp_path: Path) -> None:
    """A device copy `sluice meta collect` stored is copied by `sluice pipeline run --once` to the
    backup target like a capture file, and its meta_files row says so."""
    import json
    import sqlite3

    spool, backup, device = tmp_path / "spool", tmp_path / "backup", tmp_path / "switch.conf"
    spool.mkdir()
    backup.mkdir()
    device.write_text("interface p1\n  mirror to span\n")
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["eth9"]\nspool = "{spool}"\n[pipeline]\nbackup = ["{backup}"]\n'
                      f'[meta]\n[[meta.sources]]\nname = "switch"\nkind = "device"\nfiles = ["{device}"]\n')
    for args in (["meta", "collect", "--no-commit"], ["pipeline", "run", "--once"]):
        proc = subprocess.run([sys.executable, "-m", "appliance.cli", *args, "--config", str(config)], cwd=REPO,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rel, state, steps = sqlite3.connect(spool / "catalog.sqlite").execute(
        "SELECT path, state, steps FROM meta_files").fetchone()
    assert state == "backed_up" and json.loads(steps)["backup"]["ok"]
    assert (backup / rel).read_bytes() == (spool / rel).read_bytes() and "mirror to span" in (backup / rel).read_text()
