"""The table of live sockets and the events that changes to it make.

Each dump is compared with the table: a cookie not seen before is `opened`, a new state is
`state`, a cookie gone from the dump is `closed` (source "dump": it closed between the previous
dump and this one). A destroy notification closes a socket at once (source "destroy", with the
kernel's final counters); one for a socket no dump saw is an `opened`-and-`closed` socket whose
life lay between two dumps: it is logged as `closed` with seen_open false and `after_ns`, the
time of the last dump before it (it opened after that). Its owner is unknown (the kernel no longer
names a file), except for a TCP socket accepted from a listener we know: it is given to the
listener's owner (owner_source "listener").

A TCP socket entering TIME_WAIT is freed (its destroy notification is its `closed` event) and
replaced by a mini-socket with another cookie and no file; a TIME_WAIT socket with the 5-tuple of
a socket just closed, or of a tracked one that vanished from the same dump, continues that
socket instead of opening a new one. Sockets that were never bound (port 0 at both ends) put
nothing on the wire and are not logged.

Memory is bounded: at most `max_sockets` live sockets are tracked (more are counted as
untracked in each dump), and the recently-closed cookies (kept so a TIME_WAIT left-over is not reported as a
new socket) are capped and expire.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.conns.owners import Owners, Proc
from appliance.conns.sockets import SockInfo

CLOSED_KEEP_NS = 180 * 10**9  # longer than TIME_WAIT (60 s)
CLOSED_MAX = 65536
WILDCARDS = {"0.0.0.0", "::"}

Event = dict[str, Any]


def five_tuple(s: SockInfo) -> tuple[object, ...]:
    return (s.proto, s.local_addr, s.local_port, s.remote_addr, s.remote_port)


@dataclass
class Tracked:
    """A socket through its life. `cookie` is its first cookie: the one every event carries."""

    sock: SockInfo
    opened_ns: int
    after_ns: int | None
    proc: Proc | None = None
    pids: list[int] = field(default_factory=list)
    owner_source: str | None = None
    cookie: int = 0

    def __post_init__(self) -> None:
        self.cookie = self.cookie or self.sock.cookie


class Tracker:
    def __init__(self, host: str, emit: Callable[[Event], None], max_sockets: int = 262144,
                 owners: Owners | None = None) -> None:
        self.host = host
        self.emit = emit
        self.max_sockets = max_sockets
        self.owners = owners or Owners()
        self.table: dict[int, Tracked] = {}
        self._closed: OrderedDict[int, int] = OrderedDict()  # cookie -> closed at (ns)
        self._closed_tuples: OrderedDict[tuple[object, ...], int] = OrderedDict()
        self.last_dump_ns: int | None = None
        self.untracked = 0
        self.events: dict[str, int] = {"opened": 0, "state": 0, "closed": 0}

    # -- events ----------------------------------------------------------------------------------
    def _event(self, kind: str, ts_ns: int, t: Tracked, **extra: Any) -> None:
        s = t.sock
        ev: Event = {
            "event": kind, "ts_ns": ts_ns, "host": self.host, "cookie": t.cookie, "proto": s.proto,
            "family": s.family, "state": s.state, "local_addr": s.local_addr, "local_port": s.local_port,
            "remote_addr": s.remote_addr, "remote_port": s.remote_port,
            "pid": t.proc.pid if t.proc else None, "comm": t.proc.comm if t.proc else None,
            "user": t.proc.user if t.proc else None, "pids": t.pids, "owner_source": t.owner_source,
            "uid": s.uid, **s.counters(),
        }
        ev.update(extra)
        self.events[kind] += 1
        self.emit(ev)

    # -- owners ----------------------------------------------------------------------------------
    def _own_by_inode(self, t: Tracked) -> None:
        if t.proc is not None or not t.sock.inode:
            return
        proc, pids = self.owners.owner(t.sock.inode)
        if proc is not None:
            t.proc, t.pids, t.owner_source = proc, pids, "fd"

    def _listener_of(self, s: SockInfo) -> Tracked | None:
        if s.proto != "tcp":
            return None
        for t in self.table.values():
            ls = t.sock
            if (ls.proto == "tcp" and ls.state == "LISTEN" and ls.local_port == s.local_port
                    and ls.local_addr in (s.local_addr, *WILDCARDS) and t.proc is not None):
                return t
        return None

    # -- closed cookies ----------------------------------------------------------------------------
    def _remember_closed(self, s: SockInfo, ts_ns: int) -> None:
        for table, key in ((self._closed, s.cookie), (self._closed_tuples, five_tuple(s))):
            table[key] = ts_ns  # type: ignore[index]
            table.move_to_end(key)  # type: ignore[attr-defined]
            while table and (len(table) > CLOSED_MAX or next(iter(table.values())) < ts_ns - CLOSED_KEEP_NS):
                table.popitem(last=False)  # type: ignore[call-arg]

    # -- inputs ----------------------------------------------------------------------------------
    def on_dump(self, socks: list[SockInfo], ts_ns: int | None = None) -> None:
        ts_ns = ts_ns if ts_ns is not None else time.time_ns()
        self.owners.update({s.inode for s in socks if s.inode})
        self.untracked = 0  # sockets of this dump left out (the table is full)
        seen = {s.cookie for s in socks}
        vanished = {five_tuple(t.sock): c for c, t in self.table.items() if c not in seen}
        for s in socks:
            if s.cookie in self._closed or (s.local_port == 0 and s.remote_port == 0):
                continue
            t = self.table.get(s.cookie)
            if t is None and s.state == "TIME_WAIT":
                if five_tuple(s) in self._closed_tuples:
                    continue  # the mini-socket of a socket already logged as closed
                old_cookie = vanished.pop(five_tuple(s), None)
                if old_cookie is not None:  # the same connection, now a mini-socket
                    t = self.table.pop(old_cookie)
                    self.table[s.cookie] = t
            if t is None:
                if len(self.table) >= self.max_sockets:
                    self.untracked += 1
                    continue
                t = Tracked(sock=s, opened_ns=ts_ns, after_ns=self.last_dump_ns)
                self.table[s.cookie] = t
                self._own_by_inode(t)
                if t.proc is None and s.state in ("SYN_RECV", "NEW_SYN_RECV", "ESTABLISHED"):
                    self._own_by_listener(t)
                self._event("opened", ts_ns, t, after_ns=t.after_ns)
                continue
            old = t.sock
            if s.inode == 0 and old.inode:
                s.inode, s.uid = old.inode, old.uid  # TIME_WAIT and orphans lose their file
            if s.proto == "tcp" and s.bytes_sent is None:  # a TIME_WAIT mini-socket has no tcp_info
                s.bytes_sent, s.bytes_received, s.retransmits = old.bytes_sent, old.bytes_received, old.retransmits
            t.sock = s
            if t.owner_source != "fd":
                self._own_by_inode(t)
            if s.state != old.state:
                self._event("state", ts_ns, t, old_state=old.state)
        for cookie in [c for c, t in self.table.items() if t.sock.cookie not in seen]:
            t = self.table.pop(cookie)
            self._remember_closed(t.sock, ts_ns)
            self._event("closed", ts_ns, t, source="dump", seen_open=True, opened_ns=t.opened_ns,
                        after_ns=t.after_ns)
        self.last_dump_ns = ts_ns

    def _own_by_listener(self, t: Tracked) -> None:
        listener = self._listener_of(t.sock)
        if listener is not None:
            t.proc, t.pids, t.owner_source = listener.proc, listener.pids, "listener"

    def on_destroy(self, s: SockInfo, ts_ns: int | None = None) -> None:
        ts_ns = ts_ns if ts_ns is not None else time.time_ns()
        if s.cookie in self._closed or (s.local_port == 0 and s.remote_port == 0):
            return
        t = self.table.pop(s.cookie, None)
        if t is None:  # a dump already saw its TIME_WAIT mini-socket (another cookie)
            for cookie, other in self.table.items():
                if other.sock.state == "TIME_WAIT" and five_tuple(other.sock) == five_tuple(s):
                    t = self.table.pop(cookie)
                    break
        self._remember_closed(s, ts_ns)
        if t is not None:
            s.inode, s.uid = t.sock.inode, t.sock.uid
            t.sock = s
            self._event("closed", ts_ns, t, source="destroy", seen_open=True, opened_ns=t.opened_ns,
                        after_ns=t.after_ns)
            return
        t = Tracked(sock=s, opened_ns=self.last_dump_ns or ts_ns, after_ns=self.last_dump_ns)
        self._own_by_listener(t)
        self._event("closed", ts_ns, t, source="destroy", seen_open=False, opened_ns=None,
                    after_ns=self.last_dump_ns)

    def by_state(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for t in self.table.values():
            key = (t.sock.proto, t.sock.state)
            counts[key] = counts.get(key, 0) + 1
        return counts
