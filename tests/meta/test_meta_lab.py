"""`sluice meta collect` against real sources in the lab: Knot DNS (AXFR, then IXFR after a zone
change) in h3, the lab's dnsmasq handing a real lease to busybox udhcpc in h3, the lab switch's
bridge/VLAN/mirror config read with `bridge`, `ip`, `tc` (a port cost changed is a diff and a journal
event), and a source that fails (retried, journaled, in the metrics) without stopping the others."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.lab import services
from tests.conftest import REPO, require_tool
from tests.monitoring.live import wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns]

ZONE = "meta.example."


def zone_text(serial: int, extra: str = "") -> str:
    return (f"$ORIGIN {ZONE}\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 300\n@ NS ns1\n"
            "ns1 A 198.51.100.53\nwww A 198.51.100.80\nwww AAAA 2001:db8::80\nmail MX 10 www\n" + extra)


def start_knot(lab, workdir: Path) -> subprocess.Popen[bytes]:  # noqa: ANN001
    h3 = lab.host("h3")
    (workdir / "zones").mkdir(parents=True)
    (workdir / "db").mkdir()
    (workdir / "zones" / "meta.example.zone").write_text(zone_text(1))
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    listen: {h3.ipv4}@53
    rundir: {workdir}
    user: root:root
database:
    storage: {workdir}/db
acl:
  - id: xfr
    address: 198.51.100.0/24
    action: transfer
template:
  - id: default
    storage: {workdir}/zones
    zonefile-load: difference
    journal-content: changes
    zonefile-sync: -1
zone:
  - domain: {ZONE}
    acl: xfr
""")
    proc = subprocess.Popen(lab.argv(h3.ns, [require_tool("knotd"), "-c", str(conf)]),
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "knotd.log", "wb"))
    try:
        wait_for(lambda: "198.51.100.80" in lab.exec(h3.ns, ["dig", f"@{h3.ipv4}", "+short", f"www.{ZONE}"],
                                                     check=False).stdout or None, 20, "knotd answers")
    except AssertionError:
        proc.terminate()
        raise AssertionError((workdir / "knotd.log").read_text()[-2000:]) from None
    return proc


def collect(lab, config: Path) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    """The pass runs in h1 (the lab's management host: it reaches the servers over the switch)."""
    return subprocess.run(lab.argv(lab.host("h1").ns, [sys.executable, "-m", "appliance.cli", "meta", "collect",
                                                        "--config", str(config)]),
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_meta_collect_in_the_lab(lab, tmp_path: Path) -> None:  # noqa: ANN001
    require_tool("udhcpc")
    h1, h3 = lab.host("h1"), lab.host("h3")
    knot = start_knot(lab, tmp_path / "knot")
    try:
        # a real lease: udhcpc in h3 asks the lab's dnsmasq (it configures nothing: -s /bin/true)
        lab.exec(h3.ns, ["udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-s", "/bin/true",
                         "-x", "hostname:meta-client"], timeout=60)
        leases = services.lease_file(lab.id)
        wait_for(lambda: leases.read_text().strip() or None, 10, "dnsmasq wrote the lease")
        spool = tmp_path / "spool"
        config = tmp_path / "sluice.toml"
        config.write_text(f"""[capture]
interfaces = ["{lab.capture_if}"]
spool = "{spool}"
host = "lab"
[meta]
retries = 1
retry_delay = 0.2
[[meta.sources]]
name = "zone"
kind = "dns"
server = "{h3.ipv4}"
zone = "{ZONE}"
[[meta.sources]]
name = "leases"
kind = "dhcp"
format = "dnsmasq"
path = "{leases}"
[[meta.sources]]
name = "switch"
kind = "device"
netns = "{lab.switch_ns}"
commands = ["bridge -d link show", "bridge vlan show", "ip -d link show", "tc filter show dev p1 ingress",
            "tc filter show dev p1 egress"]
[[meta.sources]]
name = "broken"
kind = "dns"
server = "{h1.ipv4}"
port = 5399
zone = "{ZONE}"
""")
        first = collect(lab, config)
        assert first.returncode == 1, first.stdout + first.stderr  # the broken source fails the pass, nothing else
        assert "broken" in first.stdout and "FAILED after 2 attempt(s)" in first.stdout, first.stdout

        # DNS: the whole zone, the same records dig's AXFR shows
        zone1 = sorted((spool / "meta" / "dns" / "zone").glob("*.zone"))
        assert len(zone1) == 1
        dig = lab.exec(h3.ns, ["dig", f"@{h3.ipv4}", "AXFR", ZONE, "+noall", "+answer"]).stdout
        dig_records = {" ".join(line.split()[i] for i in (0, 3)) + " " + " ".join(line.split()[4:])
                       for line in dig.splitlines() if line.strip() and not line.startswith(";")}
        ours = {" ".join(line.split()[i] for i in (0, 3)) + " " + " ".join(line.split()[4:])
                for line in zone1[0].read_text().splitlines() if line.strip()}
        assert ours == dig_records and any("2001:db8::80" in r for r in ours)

        # DHCP: the lease of h3's MAC, with the hostname it asked for, in the normalised table
        table = sorted((spool / "meta" / "dhcp" / "leases").glob("*.csv"))[0].read_text().splitlines()
        assert table[0] == "mac,address,hostname,start,end"
        row = dict(zip(table[0].split(","), table[1].split(","), strict=True))
        lo, hi = services.dhcp_range(lab)
        assert row["mac"] == h3.mac.lower() and row["hostname"] == "meta-client"
        assert int(lo.rsplit(".", 1)[1]) <= int(row["address"].rsplit(".", 1)[1]) <= int(hi.rsplit(".", 1)[1])
        assert abs(float(row["end"]) - (time.time() + 3600)) < 120

        # device: the mirror is in the text
        dev1 = sorted((spool / "meta" / "device" / "switch").glob("*.txt"))
        assert len(dev1) == 1 and "mirred" in dev1[0].read_text() and "br0" in dev1[0].read_text()

        # change the zone (IXFR) and the switch (a port cost), collect again
        (tmp_path / "knot" / "zones" / "meta.example.zone").write_text(zone_text(2, "new A 198.51.100.99\n"))
        lab.exec(h3.ns, ["knotc", "-c", str(tmp_path / "knot" / "knot.conf"), "zone-reload", ZONE])
        wait_for(lambda: lab.exec(h3.ns, ["dig", f"@{h3.ipv4}", "+short", f"new.{ZONE}"],
                                  check=False).stdout.strip() or None, 20, "the new serial served")
        lab.exec(lab.switch_ns, ["ip", "link", "set", "dev", "p3", "type", "bridge_slave", "cost", "42"])
        second = collect(lab, config)
        assert second.returncode == 1 and "switch" in second.stdout and "ok changed" in second.stdout, second.stdout
    finally:
        knot.terminate()
        knot.wait(10)

    zone2 = sorted((spool / "meta" / "dns" / "zone").glob("*.zone"))
    assert len(zone2) == 2 and "198.51.100.99" in zone2[1].read_text() and "198.51.100.99" not in zone1[0].read_text()
    diffs = list((spool / "meta" / "device" / "switch").glob("*.diff"))
    assert len(diffs) == 1 and any(line.startswith("+") and "42" in line for line in diffs[0].read_text().splitlines())

    events = [json.loads(line) for line in (spool / "journal.jsonl").read_text().splitlines()]
    collected = [e for e in events if e["event"] == "meta_collected"]
    zone_events = [e for e in collected if e["source"] == "zone"]
    assert [e["method"] for e in zone_events] == ["axfr", "ixfr"] and zone_events[1]["from_serial"] == 1
    assert zone_events[1]["serial"] == 2
    changed = [e for e in events if e["event"] == "meta_config_changed"]
    assert len(changed) == 1 and changed[0]["source"] == "switch" and changed[0]["added"] >= 1
    failed = [e for e in events if e["event"] == "meta_source_failed"]
    assert [e["source"] for e in failed] == ["broken", "broken"] and all(e["attempts"] == 2 for e in failed)

    metrics = (spool / "meta" / "metrics.prom").read_text()
    assert 'sluice_meta_source_up{source="broken",kind="dns"} 0' in metrics
    assert 'sluice_meta_failures_total{source="broken",kind="dns"} 2' in metrics
    assert 'sluice_meta_source_up{source="zone",kind="dns"} 1' in metrics

    # every stored copy is catalogued, with the columns the pipeline's backup reads
    import sqlite3

    db = sqlite3.connect(spool / "catalog.sqlite")
    rows = db.execute("SELECT path, kind, source, size, sha256, state FROM meta_files ORDER BY path").fetchall()
    stored = sorted(str(p.relative_to(spool)) for p in (spool / "meta").rglob("*")
                    if p.suffix in (".zone", ".csv", ".txt"))
    assert [r[0] for r in rows] == stored and all(r[5] == "closed" for r in rows)
    assert all(r[3] == (spool / r[0]).stat().st_size for r in rows)
