"""`sluice conns join` against flows made from a real capture of the same traffic: agents on h1
and h2, sluice-capture on the lab's SPAN port, sluice-pcap flows; every flow that a logged socket
explains gets its program, on the side that ran it, and no other flow gets one."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from appliance.lab.services import HTTP_PORT, IPERF_PORT
from tests.capture.conftest import capture_binary, closed_files, start_writer  # noqa: F401
from tests.conftest import REPO, SLUICE_PCAP
from tests.conns.conftest import ConnsAgent, finish, server_pid, sluice_argv, spawn
from tests.conns.test_conns_lab import _held_http, _request, _url

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _join(tmp_path: Path, logs: list[Path], flows: Path, out: Path) -> list[dict]:
    argv = sluice_argv("conns", "join", *[a for log in logs for a in ("--conns", str(log))],
                       "--flows", str(flows), "-o", str(out), "--host", "lab")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("conns join: flows ")
    table = ds.dataset(str(out), format="parquet", partitioning="hive").to_table()
    for name in ("first_ts", "last_ts"):  # µs timestamps (what Spark and Trino read): as integers
        assert str(table.schema.field(name).type) == "timestamp[us, tz=UTC]"
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast("int64"))
    return table.to_pylist()


def test_join_attributes_exactly_the_flows_logged_sockets_explain(lab, capture_binary, tmp_path: Path  # noqa: F811
                                                                  ) -> None:
    h1, h2, h3 = lab.host("h1"), lab.host("h2"), lab.host("h3")
    spool = tmp_path / "spool"
    spool.mkdir()
    writer = start_writer(capture_binary, lab.capture_ns, ["-i", lab.capture_if, "-w", str(spool), "--host", "lab"])
    writer.wait_ready()
    agents = [ConnsAgent(h1.ns, tmp_path / "h1.jsonl"), ConnsAgent(h2.ns, tmp_path / "h2.jsonl")]

    curls = [_held_http(h2.ns, h1.ipv4), _held_http(h2.ns, h1.ipv6)]
    iperf = spawn(h2.ns, ["iperf3", "-c", h1.ipv4, "-p", str(IPERF_PORT), "-t", "1", "-b", "5M"])
    finish(iperf)
    for curl in curls:
        _request(curl)
    dig = spawn(h3.ns, ["dig", "+short", "+time=2", "+tries=1", f"@{h2.ipv4}", "www.lab.example", "A"])
    assert h1.ipv4 in finish(dig)
    quick = spawn(h3.ns, ["curl", "-sS", "-o", "/dev/null", "--max-time", "10", _url(h1.ipv4)])
    finish(quick)
    ping = spawn(h1.ns, ["ping", "-n", "-q", "-c", "3", "-i", "0.05", h2.ipv4])
    finish(ping)
    # h3 has no agent: its short connection is known from h1's side only, once h1's agent logged it
    agents[0].wait_for(lambda e: e.get("comm") == "python3" and e.get("remote_addr") == h3.ipv4
                       and e["event"] == "closed")
    for a in agents:
        a.wait_quiet()
        a.stop()
    writer.wait_quiet()
    assert writer.stop() == 0, writer.stderr_text()

    files = closed_files(spool)
    flows_csv, flows_ipfix = tmp_path / "flows.csv", tmp_path / "flows.ipfix"
    for out, fmt in ((flows_csv, "csv"), (flows_ipfix, "ipfix")):
        subprocess.run([str(SLUICE_PCAP), "flows", "--format", fmt, "-o", str(out), *map(str, files)],
                       check=True, capture_output=True)

    httpd, iperfd, dnsmasq = (server_pid(h1.ns, "python3"), server_pid(h1.ns, "iperf3"),
                              server_pid(h2.ns, "dnsmasq"))
    client_pids = {c.pid: "curl" for c in curls} | {iperf.pid: "iperf3"}
    addrs = {h.ipv4: h.name for h in (h1, h2, h3)} | {h.ipv6: h.name for h in (h1, h2, h3)}

    def expected(host: str, port: int, peer_host: str, peer_port: int, proto: int) -> set | None:
        """What may own this end of a flow, from what the test ran: None where nothing logged does."""
        if host == "h1" and proto == 6 and port == HTTP_PORT and peer_host in ("h2", "h3"):
            return {(httpd, "python3")}
        if host == "h1" and proto == 6 and port == IPERF_PORT and peer_host == "h2":
            return {(iperfd, "iperf3")}
        if host == "h2" and proto == 17 and port == 53 and peer_host == "h3":
            return {(dnsmasq, "dnsmasq")}
        if host == "h2" and proto == 6 and peer_host == "h1" and peer_port in (HTTP_PORT, IPERF_PORT):
            return {(pid, comm) for pid, comm in client_pids.items()}
        return None

    results = {}
    for name, flows_path in (("csv", flows_csv), ("ipfix", flows_ipfix)):
        rows = _join(tmp_path, [tmp_path / "h1.jsonl", tmp_path / "h2.jsonl"], flows_path, tmp_path / f"out-{name}")
        assert len(rows) >= 7, rows
        explained = 0
        for r in rows:
            for side, other in (("src", "dst"), ("dst", "src")):
                host, peer = addrs.get(r[f"{side}_addr"]), addrs.get(r[f"{other}_addr"])
                want = expected(host, r[f"{side}_port"], peer, r[f"{other}_port"], r["proto"]) if host else None
                got = (r[f"{side}_pid"], r[f"{side}_comm"])
                if want is None:
                    assert got == (None, None) and r[f"{side}_host"] is None, (side, r)
                else:
                    assert got in want, (side, r, want)
                    assert r[f"{side}_host"] == "vm" or r[f"{side}_host"]
                    explained += 1
            assert r["host"] == "lab"
            assert r["date"] == dt.datetime.fromtimestamp(r["first_ns"] / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")
            assert (r["first_ts"], r["last_ts"]) == (r["first_ns"] // 1000, r["last_ns"] // 1000)
        # both curls, iperf3 (control and data), the HTTP and DNS of h3: at least 7 ends explained
        assert explained >= 9
        both = [r for r in rows if r["src_pid"] and r["dst_pid"]]
        assert {r["src_comm"] for r in both} == {"curl", "iperf3"} and {6} == {r["proto"] for r in both}
        assert {r["src_pid"] for r in both} == set(client_pids)
        results[name] = sorted((r["src_addr"], r["src_port"], r["dst_addr"], r["dst_port"], r["proto"],
                                r["src_pid"], r["dst_pid"]) for r in rows)
        parquet_files = list((tmp_path / f"out-{name}").glob("host=lab/date=*/*.parquet"))
        assert parquet_files and not list((tmp_path / f"out-{name}").rglob(".*tmp"))
    assert results["csv"] == results["ipfix"]

    # The Parquet it wrote is itself a flows input: joining it again gives the same attribution.
    again = _join(tmp_path, [tmp_path / "h1.jsonl", tmp_path / "h2.jsonl"], tmp_path / "out-csv",
                  tmp_path / "out-again")
    assert sorted((r["src_addr"], r["src_port"], r["dst_addr"], r["dst_port"], r["proto"], r["src_pid"],
                   r["dst_pid"]) for r in again) == results["csv"]
