"""`sluice conns` in lab hosts' namespaces with real programs: curl, iperf3 (TCP and UDP), dig and
the lab's servers. Every connection shows with the pid and command of the program that made it;
sockets that opened and closed between two dumps are still logged (destroy notifications)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from appliance.lab.services import HTTP_PORT, IPERF_PORT, PAGE_SIZE
from tests.conftest import REPO
from tests.conns.conftest import ConnsAgent, finish, server_pid, sluice_argv, spawn

pytestmark = [pytest.mark.root, pytest.mark.netns]


def _url(addr: str, page: str = "index.html") -> str:
    host = f"[{addr}]" if ":" in addr else addr
    return f"http://{host}:{HTTP_PORT}/{page}"


def _held_http(ns: str, addr: str) -> subprocess.Popen[str]:
    """curl connected to the HTTP server and held open until request() sends the GET: a
    connection that lives across several dumps (a plain GET is over in milliseconds)."""
    host = f"[{addr}]" if ":" in addr else addr
    return spawn(ns, ["curl", "-sS", "--max-time", "30", f"telnet://{host}:{HTTP_PORT}"], stdin=subprocess.PIPE)


def _request(curl: subprocess.Popen[str]) -> str:
    out, err = curl.communicate("GET /index.html HTTP/1.0\r\n\r\n", timeout=30)
    assert curl.returncode == 0 and out.startswith("HTTP/1.0 200"), err
    return out


def _by_pid(events: list[dict], pid: int) -> list[dict]:
    return [e for e in events if e.get("pid") == pid]


def test_every_connection_with_its_pid_and_command(lab, tmp_path: Path) -> None:
    h1, h2 = lab.host("h1"), lab.host("h2")
    server = ConnsAgent(h1.ns, tmp_path / "h1.jsonl")
    client = ConnsAgent(h2.ns, tmp_path / "h2.jsonl")
    curl4 = _held_http(h2.ns, h1.ipv4)
    curl6 = _held_http(h2.ns, h1.ipv6)
    iperf_tcp = spawn(h2.ns, ["iperf3", "-c", h1.ipv4, "-p", str(IPERF_PORT), "-t", "1.5", "-b", "5M"])
    finish(iperf_tcp)
    for curl in (curl4, curl6):
        _request(curl)
    iperf_udp = spawn(h2.ns, ["iperf3", "-u", "-c", h1.ipv6, "-p", str(IPERF_PORT), "-t", "1.5", "-b", "1M"])
    finish(iperf_udp)
    for agent in (client, server):
        agent.wait_quiet()
    h2_events, h1_events = client.stop(), server.stop()

    expect = [(curl4, "curl", "tcp", 4, h1.ipv4, HTTP_PORT), (curl6, "curl", "tcp", 6, h1.ipv6, HTTP_PORT),
              (iperf_tcp, "iperf3", "tcp", 4, h1.ipv4, IPERF_PORT),
              (iperf_udp, "iperf3", "udp", 6, h1.ipv6, IPERF_PORT)]
    client_ports: dict[tuple[str, int], int] = {}
    for proc, comm, proto, family, addr, port in expect:
        mine = [e for e in _by_pid(h2_events, proc.pid) if e["proto"] == proto and e["remote_port"] == port]
        assert mine, f"{comm} pid {proc.pid}: no {proto} socket to {addr}:{port} in {h2_events}"
        for e in mine:
            assert e["comm"] == comm and e["user"] == "root" and e["owner_source"] == "fd"
            assert e["family"] == family and e["remote_addr"] == addr and e["local_addr"] == (
                h2.ipv6 if family == 6 else h2.ipv4)
        opened = [e for e in mine if e["event"] == "opened"]
        closed = [e for e in mine if e["event"] == "closed"]
        assert opened and closed, f"{comm}: opened and closed both logged"
        assert all(c["ts_ns"] > o["ts_ns"] for c in closed for o in opened if c["cookie"] == o["cookie"])
        if proto == "tcp":
            # tcp_info: the page came in; the kernel's count of what the peer acked went out
            assert max(e["bytes_received"] or 0 for e in mine) > (PAGE_SIZE if comm == "curl" else 0)
            assert all(e["retransmits"] is not None for e in mine)
        for e in mine:
            client_ports[(proto, e["local_port"])] = proc.pid

    httpd, iperfd = server_pid(h1.ns, "python3"), server_pid(h1.ns, "iperf3")
    listening = {(e["proto"], e["local_port"], e["pid"]) for e in h1_events
                 if e["event"] == "opened" and e["state"] == "LISTEN"}
    assert ("tcp", HTTP_PORT, httpd) in listening and ("tcp", IPERF_PORT, iperfd) in listening
    # the server side of each client connection: the same 5-tuple seen from h1, the server's pid
    for (proto, port), _pid in client_ports.items():
        side = [e for e in h1_events if e.get("proto") == proto and e.get("remote_port") == port
                and e["event"] in ("opened", "closed")]
        assert side, f"h1 saw no {proto} socket from port {port}"
        assert {e["pid"] for e in side} <= {httpd, iperfd}
        assert all(e["comm"] in ("python3", "iperf3") for e in side)


def test_short_connections_between_dumps_are_still_logged(lab, tmp_path: Path) -> None:
    h1, h2 = lab.host("h1"), lab.host("h2")
    # one dump at the start, the next in an hour: every socket below lives between two dumps
    server = ConnsAgent(h1.ns, tmp_path / "h1.jsonl", interval=3600)
    client = ConnsAgent(h2.ns, tmp_path / "h2.jsonl", interval=3600)
    curl = spawn(h2.ns, ["curl", "-sS", "-o", "/dev/null", "--max-time", "10", _url(h1.ipv4)])
    finish(curl)
    dig = spawn(h1.ns, ["dig", "+short", "+time=2", "+tries=1", f"@{h2.ipv4}", "www.lab.example", "A"])
    assert h1.ipv4 in finish(dig)
    server.wait_for(lambda e: e["event"] == "closed" and e["proto"] == "udp" and e["remote_port"] == 53)
    client.wait_for(lambda e: e["event"] == "closed" and e["proto"] == "tcp" and e["remote_port"] == HTTP_PORT)
    h1_events, h2_events = server.stop(), client.stop()
    assert not any(e["event"] == "opened" and e["state"] != "LISTEN" and e["proto"] == "tcp"
                   and e["local_port"] == HTTP_PORT for e in h1_events), "no dump could have seen it"

    client_side = [e for e in h2_events if e["event"] == "closed" and e["remote_port"] == HTTP_PORT]
    assert len(client_side) == 1
    c = client_side[0]
    assert (c["source"], c["seen_open"], c["proto"], c["local_addr"], c["remote_addr"]) == (
        "destroy", False, "tcp", h2.ipv4, h1.ipv4)
    assert c["bytes_received"] > 30_000 and c["after_ns"] < c["ts_ns"]
    assert c["pid"] is None  # the kernel names no file for a freed socket: the documented limit

    server_side = [e for e in h1_events if e["event"] == "closed" and e["local_port"] == HTTP_PORT]
    assert len(server_side) == 1
    s = server_side[0]
    assert (s["remote_addr"], s["remote_port"], s["source"]) == (h2.ipv4, c["local_port"], "destroy")
    # an accepted socket is given to its listener's owner
    assert (s["pid"], s["comm"], s["owner_source"]) == (server_pid(h1.ns, "python3"), "python3", "listener")
    assert s["bytes_sent"] >= 32 * 1024

    dns = [e for e in h1_events if e["event"] == "closed" and e["proto"] == "udp" and e["remote_port"] == 53]
    assert len(dns) == 1 and dns[0]["remote_addr"] == h2.ipv4 and dns[0]["source"] == "destroy"


def test_live_table_and_metrics(lab, tmp_path: Path) -> None:
    h1 = lab.host("h1")
    live = spawn(h1.ns, sluice_argv("conns", "--interval", "0.2", "--duration", "3", "--metrics",
                                    "127.0.0.1:9751"))
    deadline = time.monotonic() + 20
    metrics = ""
    while time.monotonic() < deadline and "sluice_conns_sockets{" not in metrics:  # after the first dump
        time.sleep(0.3)
        got = subprocess.run(["ip", "netns", "exec", h1.ns, "curl", "-s", "http://127.0.0.1:9751/metrics"],
                             capture_output=True, text=True, cwd=REPO)
        metrics = got.stdout
    screen = finish(live)
    assert 'sluice_conns_sockets{proto="tcp",state="LISTEN"}' in metrics
    listen = [line for line in metrics.splitlines()
              if line.startswith('sluice_conns_sockets{proto="tcp",state="LISTEN"}')]
    assert float(listen[0].split()[-1]) >= 3  # http.server, iperf3, the agent's own /metrics
    assert 'sluice_conns_events_total{event="opened"}' in metrics
    rows = [line for line in screen.split("\x1b[H")[-1].splitlines() if "LISTEN" in line]
    assert any(f":{HTTP_PORT}" in r and "python3" in r and str(server_pid(h1.ns, "python3")) in r for r in rows)
    assert any(f":{IPERF_PORT}" in r and "iperf3" in r for r in rows)


def test_memory_bound_and_log_reopen(lab, tmp_path: Path) -> None:
    h1, h2 = lab.host("h1"), lab.host("h2")
    # h1 holds two listeners (HTTP, iperf3): with room for one socket, the other is counted, not kept
    bounded = ConnsAgent(h1.ns, tmp_path / "bounded.jsonl", extra=["--max-sockets", "1"])
    agent = ConnsAgent(h2.ns, tmp_path / "h2.jsonl")
    (tmp_path / "h2.jsonl").rename(tmp_path / "h2.jsonl.1")  # what logrotate does
    agent.proc.send_signal(signal.SIGHUP)
    curl = _held_http(h2.ns, h1.ipv4)
    agent.log = tmp_path / "h2.jsonl"
    agent.wait_for(lambda e: e.get("pid") == curl.pid and e["event"] == "opened")  # logged after the reopen
    _request(curl)
    agent.wait_for(lambda e: e.get("pid") == curl.pid and e["event"] == "closed")
    events = agent.stop()
    assert events[0]["event"] == "opened" and not any(e["event"] == "start" for e in events)
    old = (tmp_path / "h2.jsonl.1").read_text().splitlines()
    assert old and str(curl.pid) not in "".join(old)
    # the TIME_WAIT left-over of the closed connection is not logged as a new socket
    ports = [e["local_port"] for e in events if e.get("pid") == curl.pid]
    assert not [e for e in events if e["event"] == "opened" and e["state"] == "TIME_WAIT"
                and e["local_port"] in ports]
    stop = bounded.stop()[-1]
    assert stop["untracked"] >= 1
    opened = [e for e in bounded.events() if e["event"] == "opened"]
    assert len(opened) == 1
