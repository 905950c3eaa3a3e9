"""sock_diag messages on the wire: the dump request and a struct decoder of inet_diag_msg.

pyroute2's DiagSocket decodes every attribute of every message into Python objects through its
asyncio core: about 0.4 ms a socket here, so a dump of 15,000 sockets took 5.6 s (bench_conns).
The agent only needs the fixed header, the protocol and the first fields of tcp_info, so it
reads them with struct (the layouts of linux/inet_diag.h and linux/tcp.h, which only ever grow at
the end) and keeps pyroute2 for its constants. tests/conns/test_conns_decode.py checks this
decoder against pyroute2's DiagSocket on the same live sockets.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
SOCK_DIAG_BY_FAMILY = 20
INET_DIAG_INFO = 2
INET_DIAG_PROTOCOL = 10

NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_msg (72 bytes): family, state, timer, retrans; sport, dport (network order);
# src[16], dst[16]; if, cookie (two host-order u32: one u64 here), expires, rqueue, wqueue, uid, inode
_HEAD = struct.Struct("=BBBB")
_PORTS = struct.Struct(">HH")
_TAIL = struct.Struct("=IQIIIII")  # if, cookie, expires, rqueue, wqueue, uid, inode
MSG_LEN = 72
NLATTR = struct.Struct("=HH")
# tcp_info: tcpi_total_retrans at 100, tcpi_bytes_acked at 120, tcpi_bytes_received at 128
TCPI_TOTAL_RETRANS = struct.Struct("=I")
TCPI_BYTES = struct.Struct("=QQ")


@dataclass
class DiagRecord:
    family: int  # AF_INET / AF_INET6
    state: int
    sport: int
    dport: int
    src: bytes  # 4 or 16 bytes
    dst: bytes
    cookie: int
    uid: int
    inode: int
    protocol: int | None = None  # INET_DIAG_PROTOCOL, present in destroy notifications
    total_retrans: int | None = None
    bytes_acked: int | None = None
    bytes_received: int | None = None

    def addresses(self) -> tuple[str, str]:
        return _ntop(self.family, self.src), _ntop(self.family, self.dst)

    def endpoints(self) -> tuple[int, str, str]:
        """(4 or 6, local, remote): IPv4-mapped IPv6 addresses as IPv4, as on the wire."""
        if self.family == socket.AF_INET6 and self.src[:12] == V4_MAPPED and self.dst[:12] in (V4_MAPPED, ZERO12):
            return 4, _ntop(socket.AF_INET, self.src[12:]), _ntop(socket.AF_INET, self.dst[12:])
        return (4 if self.family == socket.AF_INET else 6), *self.addresses()


V4_MAPPED = bytes(10) + b"\xff\xff"
ZERO12 = bytes(12)


def _ntop(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw)


def dump_request(family: int, protocol: int, states: int, ext: int, seq: int) -> bytes:
    """A SOCK_DIAG_BY_FAMILY dump request (inet_diag_req_v2 with an empty socket id)."""
    body = struct.pack("=BBBBI", family, protocol, ext, 0, states) + bytes(48)
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _record(data: bytes, off: int, end: int) -> DiagRecord:
    family, state, _timer, _retrans = _HEAD.unpack_from(data, off)
    sport, dport = _PORTS.unpack_from(data, off + 4)
    alen = 4 if family == socket.AF_INET else 16
    src = data[off + 8:off + 8 + alen]
    dst = data[off + 24:off + 24 + alen]
    ifindex, cookie, _exp, _rq, _wq, uid, inode = _TAIL.unpack_from(data, off + 40)
    rec = DiagRecord(family, state, sport, dport, bytes(src), bytes(dst), cookie, uid, inode)
    pos = off + MSG_LEN
    while pos + 4 <= end:
        alen_, atype = NLATTR.unpack_from(data, pos)
        if alen_ < 4:
            break
        payload = pos + 4
        atype &= 0x3FFF
        if atype == INET_DIAG_PROTOCOL and alen_ >= 5:
            rec.protocol = data[payload]
        elif atype == INET_DIAG_INFO and alen_ - 4 >= 136:
            (rec.total_retrans,) = TCPI_TOTAL_RETRANS.unpack_from(data, payload + 100)
            rec.bytes_acked, rec.bytes_received = TCPI_BYTES.unpack_from(data, payload + 120)
        pos += (alen_ + 3) & ~3
    return rec


def parse(data: bytes) -> Iterator[DiagRecord | int]:
    """The records of one netlink datagram; NLMSG_DONE yields 0, NLMSG_ERROR yields its -errno."""
    off = 0
    while off + NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = NLMSGHDR.unpack_from(data, off)
        if length < NLMSGHDR.size or off + length > len(data):
            return
        body = off + NLMSGHDR.size
        if mtype == NLMSG_DONE:
            yield 0
        elif mtype == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, body)
            yield code
        elif mtype == SOCK_DIAG_BY_FAMILY and length - NLMSGHDR.size >= MSG_LEN:
            yield _record(data, body, off + length)
        off += (length + 3) & ~3


class DumpSocket:
    """A NETLINK_SOCK_DIAG socket for dumps."""

    def __init__(self, netlink_sock_diag: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, netlink_sock_diag)
        self.sock.bind((0, 0))
        self.seq = 0

    def dump(self, family: int, protocol: int, states: int, ext: int) -> list[DiagRecord]:
        self.seq += 1
        self.sock.send(dump_request(family, protocol, states, ext, self.seq))
        found: list[DiagRecord] = []
        while True:
            data = self.sock.recv(1 << 20)
            for item in parse(data):
                if isinstance(item, DiagRecord):
                    found.append(item)
                elif item == 0:
                    return found
                elif item < 0:
                    if -item == errno.ENOENT:  # the protocol's diag module is not loaded
                        return found
                    raise OSError(-item, f"sock_diag dump: {errno.errorcode.get(-item, -item)}")

    def close(self) -> None:
        self.sock.close()
