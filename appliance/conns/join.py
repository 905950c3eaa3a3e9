"""`sluice conns join`: the process behind each flow, from the sockets that `sluice conns` logged.

A logged socket explains a flow when both hold the same protocol and endpoints and the socket's
life overlaps the flow's packets (with `slack` seconds either side, for the time between a dump
and the packets). A connected socket (TCP, or UDP with a peer) must match both endpoints: its
local endpoint is the flow's src or dst, its remote endpoint the other. An unconnected UDP socket
(a DNS server's, say) explains a flow when its local endpoint is one end of the flow; bound to
0.0.0.0 or ::, it stands for the host's own addresses that the log's start event lists. TCP
listeners explain nothing: the accepted sockets do. Each end of a flow gets its own process
(src_* and dst_*): two hosts that both run the agent name both programs of a conversation.

A socket's life: from its `opened` event (or the dump before it, `after_ns`, when a dump first saw
it) or, for one seen only by its destroy notification, from the dump before that, to its
`closed` event or the end of its log.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

from appliance.conns.flowsio import Flow, norm_addr, read_flows, write_parquet
from appliance.errors import SluiceError

PROTO_NUMBERS = {"tcp": 6, "udp": 17}
WILDCARDS = {"0.0.0.0": 4, "::": 6}


@dataclass
class LoggedSocket:
    host: str
    cookie: int
    proto: int
    local: tuple[str, int]
    remote: tuple[str, int]
    start_ns: int
    end_ns: int
    pid: int | None = None
    comm: str | None = None
    user: str | None = None
    owner_source: str | None = None
    state: str = ""
    addresses: set[str] = field(default_factory=set)

    @property
    def connected(self) -> bool:
        return self.remote[1] != 0

    def local_matches(self, addr: str, port: int) -> bool:
        if self.local[1] != port:
            return False
        if self.local[0] == addr:
            return True
        family = WILDCARDS.get(self.local[0])
        if family is None:
            return False
        is_v6 = ":" in addr
        # A socket on :: also takes IPv4 (dual stack); one on 0.0.0.0 only IPv4.
        return addr in self.addresses and (family == 6 or not is_v6)


def read_log(path: str) -> list[LoggedSocket]:
    """The sockets of one `sluice conns --log` file."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise SluiceError(f"conns log {path}: {exc.strerror}") from None
    socks: dict[tuple[str, int], LoggedSocket] = {}
    addresses: dict[str, set[str]] = {}
    last_ts: dict[str, int] = {}
    with f:
        try:
            lines = list(f)
        except UnicodeDecodeError:
            raise SluiceError(f"conns log {path}: not text (not a sluice conns log)") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
                kind, ts, host = ev["event"], int(ev["ts_ns"]), str(ev["host"])
            except (ValueError, KeyError, TypeError):
                raise SluiceError(f"conns log {path}: line {number}: not a sluice conns event") from None
            last_ts[host] = max(last_ts.get(host, ts), ts)
            if kind == "start":
                addresses.setdefault(host, set()).update(norm_addr(a) for a in ev.get("addresses", []))
                continue
            if kind not in ("opened", "state", "closed"):
                continue
            try:
                key = (host, int(ev["cookie"]))
                s = socks.get(key)
                if s is None:
                    begin = ev.get("after_ns") if kind == "closed" and not ev.get("seen_open") else None
                    begin = begin if begin is not None else (ev.get("after_ns") or ts)
                    s = LoggedSocket(host=host, cookie=key[1], proto=PROTO_NUMBERS[ev["proto"]],
                                     local=(norm_addr(ev["local_addr"]), int(ev["local_port"])),
                                     remote=(norm_addr(ev["remote_addr"]), int(ev["remote_port"])),
                                     start_ns=int(begin), end_ns=-1,
                                     addresses=addresses.setdefault(host, set()))
                    socks[key] = s
                if ev.get("pid") is not None:
                    s.pid, s.comm, s.user = int(ev["pid"]), ev.get("comm"), ev.get("user")
                    s.owner_source = ev.get("owner_source")
                s.state = str(ev.get("state", ""))
                if kind == "closed":
                    s.end_ns = ts
            except (ValueError, KeyError, TypeError):
                raise SluiceError(f"conns log {path}: line {number}: not a sluice conns event") from None
    for s in socks.values():
        if s.end_ns < 0:  # still open when the log ended
            s.end_ns = last_ts[s.host]
    return list(socks.values())


class SocketIndex:
    def __init__(self, socks: list[LoggedSocket]) -> None:
        self._by_port: dict[tuple[int, int], list[LoggedSocket]] = {}
        for s in socks:
            if s.proto == 6 and not s.connected:
                continue  # listeners carry no packets of their own
            self._by_port.setdefault((s.proto, s.local[1]), []).append(s)

    def explain(self, flow: Flow, addr: str, port: int, peer: tuple[str, int], slack_ns: int
                ) -> LoggedSocket | None:
        """The socket that owns endpoint (addr, port) of this flow, if a logged one does."""
        best: tuple[int, int, LoggedSocket] | None = None
        for s in self._by_port.get((flow["proto"], port), []):
            if not s.local_matches(addr, port):
                continue
            if s.connected and s.remote != peer:
                continue
            overlap = min(s.end_ns, flow["last_ns"] + slack_ns) - max(s.start_ns, flow["first_ns"] - slack_ns)
            if overlap < 0:
                continue
            rank = (1 if s.connected else 0, overlap)
            if best is None or rank > best[:2]:
                best = (*rank, s)
        return best[2] if best else None


def attribute(flows: list[Flow], socks: list[LoggedSocket], slack_s: float) -> dict[str, int]:
    index = SocketIndex(socks)
    slack_ns = int(slack_s * 1e9)
    counts = {"flows": len(flows), "attributed": 0, "src": 0, "dst": 0}
    for f in flows:
        src, dst = (f["src_addr"], f["src_port"]), (f["dst_addr"], f["dst_port"])
        any_side = False
        for side, here, there in (("src", src, dst), ("dst", dst, src)):
            s = index.explain(f, here[0], here[1], there, slack_ns) if f["proto"] in (6, 17) else None
            f[f"{side}_pid"] = s.pid if s else None
            f[f"{side}_comm"] = s.comm if s else None
            f[f"{side}_user"] = s.user if s else None
            f[f"{side}_host"] = s.host if s else None
            f[f"{side}_owner_source"] = s.owner_source if s else None
            if s is not None:
                counts[side] += 1
                any_side = True
        counts["attributed"] += any_side
    return counts


def run(logs: list[str], flow_paths: list[str], out: str, host: str | None = None,
        slack_s: float = 2.0) -> dict[str, Any]:
    socks = [s for path in logs for s in read_log(path)]
    flows = [f for path in flow_paths for f in read_flows(path)]
    counts: dict[str, Any] = attribute(flows, socks, slack_s)
    written = write_parquet(flows, out, host or socket.gethostname()) if flows else []
    counts["written"] = len(written)
    counts["files"] = [str(p) for p in written]
    return counts
