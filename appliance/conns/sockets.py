"""The kernel's view of TCP and UDP sockets, from sock_diag netlink.

Two sources, both in the network namespace the caller runs in:
- `dump()`: every TCP and UDP socket, IPv4 and IPv6, in any state (SOCK_DIAG_BY_FAMILY), with
  tcp_info (bytes acked/received, retransmits) for TCP. Dumps include TIME_WAIT sockets and
  listeners; each socket carries its inode (0 once no file refers to it) and its cookie.
- `DestroyListener`: the kernel's destroy notifications (multicast groups SKNLGRP_INET_TCP_DESTROY,
  ..._UDP_, INET6_TCP_, INET6_UDP_; needs CAP_NET_ADMIN). The kernel sends one when a full socket is
  freed, with its addresses, ports, cookie, last state and, for TCP, the final tcp_info; never an
  inode or uid (the file is already gone). A socket that opened and closed between two dumps is
  therefore still seen, without its owner. The notification is queued on our netlink socket;
  if the receive buffer overflows the kernel drops them and recv reports ENOBUFS, which we count.

Messages are decoded by diagwire.py (struct; pyroute2 supplies the constants and is the
reference the decoder is tested against).

A socket's identity is its cookie: unique per socket while the host runs, present in dumps and
in notifications (a TCP socket's TIME_WAIT mini-socket gets a cookie of its own: tracker.py).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from pyroute2.netlink import NETLINK_SOCK_DIAG
from pyroute2.netlink.diag import (
    SKNLGRP_INET6_TCP_DESTROY,
    SKNLGRP_INET6_UDP_DESTROY,
    SKNLGRP_INET_TCP_DESTROY,
    SKNLGRP_INET_UDP_DESTROY,
    SS_ALL,
)

from appliance.conns.diagwire import INET_DIAG_INFO, DiagRecord, DumpSocket, parse
from appliance.errors import SluiceError

DESTROY_GROUPS = (SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET_UDP_DESTROY, SKNLGRP_INET6_TCP_DESTROY,
                  SKNLGRP_INET6_UDP_DESTROY)
RCVBUF = 4 * 1024 * 1024  # room for a burst of destroy notifications between two reads

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}
PROTOS = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp"}


@dataclass
class SockInfo:
    """One socket as the kernel reports it at one instant."""

    cookie: int
    proto: str  # "tcp" | "udp"
    family: int  # 4 | 6 (IPv4-mapped IPv6 addresses are reported as IPv4, as on the wire)
    state: str
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    inode: int = 0
    uid: int | None = None
    bytes_sent: int | None = None  # tcp_info bytes_acked: bytes the peer acknowledged
    bytes_received: int | None = None  # tcp_info bytes_received
    retransmits: int | None = None  # tcp_info total_retrans: segments retransmitted

    def counters(self) -> dict[str, int | None]:
        return {"bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                "retransmits": self.retransmits}


def _state(proto: str, number: int) -> str:
    if proto == "tcp":
        return TCP_STATES.get(number, f"STATE_{number}")
    # UDP reuses the TCP numbers: 1 = connected (has a peer), 7 = unconnected.
    return {1: "CONNECTED", 7: "UNCONNECTED"}.get(number, f"STATE_{number}")


def from_record(rec: DiagRecord, proto: str | None = None) -> SockInfo | None:
    """A SockInfo from a decoded inet_diag_msg (a dump answer or a destroy notification)."""
    if proto is None:
        proto = PROTOS.get(rec.protocol) if rec.protocol is not None else None
        if proto is None:
            return None
    family, local, remote = rec.endpoints()
    sock = SockInfo(cookie=rec.cookie, proto=proto, family=family, state=_state(proto, rec.state),
                    local_addr=local, local_port=rec.sport, remote_addr=remote, remote_port=rec.dport,
                    inode=rec.inode, uid=rec.uid if rec.inode else None)
    if proto == "tcp" and rec.bytes_acked is not None:
        sock.bytes_sent, sock.bytes_received, sock.retransmits = (rec.bytes_acked, rec.bytes_received,
                                                                  rec.total_retrans)
    return sock


class Dumper:
    """Dumps of every TCP and UDP socket (IPv4 and IPv6) over one sock_diag socket."""

    def __init__(self) -> None:
        try:
            self._diag = DumpSocket(NETLINK_SOCK_DIAG)
        except OSError as exc:
            raise SluiceError(f"sock_diag netlink socket: {exc.strerror or exc}") from None

    def dump(self) -> list[SockInfo]:
        found: list[SockInfo] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for number, proto in PROTOS.items():
                ext = 1 << (INET_DIAG_INFO - 1) if proto == "tcp" else 0
                for rec in self._diag.dump(family, number, SS_ALL, ext):
                    sock = from_record(rec, proto)
                    if sock is not None:
                        found.append(sock)
        return found

    def close(self) -> None:
        self._diag.close()


class DestroyListener:
    """The kernel's socket-destroy notifications for TCP and UDP, IPv4 and IPv6, on a netlink
    socket bound to the four multicast groups; select() on fileno() says when some are waiting."""

    def __init__(self) -> None:
        self.overruns = 0  # times the kernel dropped notifications (receive buffer full)
        groups = 0
        for group in DESTROY_GROUPS:
            groups |= 1 << (group - 1)
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self._sock.bind((0, groups))
        except OSError as exc:
            raise SluiceError(f"sock_diag destroy notifications: {exc.strerror or exc} "
                              "(they need CAP_NET_ADMIN)") from None
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> list[SockInfo]:
        """Every notification waiting now (empty when none)."""
        found = []
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return found
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            for rec in parse(data):
                if isinstance(rec, DiagRecord):
                    sock = from_record(rec)
                    if sock is not None:
                        found.append(sock)

    def close(self) -> None:
        self._sock.close()
