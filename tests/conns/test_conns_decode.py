"""The struct decoder of sock_diag messages (diagwire.py) against pyroute2's DiagSocket, on the
same live sockets: TCP listeners, connections with data in flight both ways, TCP and UDP over IPv4
and IPv6, in a namespace of our own."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from appliance.lab import netns
from tests.conftest import REPO, unique_name

pytestmark = [pytest.mark.root, pytest.mark.netns]

SCRIPT = r"""
import json, socket, sys
from pyroute2.netlink import NETLINK_SOCK_DIAG
from pyroute2.netlink.diag import SS_ALL, DiagSocket
from appliance.conns.diagwire import INET_DIAG_INFO, DumpSocket

held = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(family); srv.bind((host, 0)); srv.listen()
    c = socket.create_connection(srv.getsockname()[:2]); a, _ = srv.accept()
    c.sendall(b"x" * 5000); a.recv(100000); a.sendall(b"y" * 3000); c.recv(100000)
    u = socket.socket(family, socket.SOCK_DGRAM); u.connect((host, 9))
    v = socket.socket(family, socket.SOCK_DGRAM); v.bind((host, 0))
    held += [srv, c, a, u, v]

ours, theirs = [], []
wire = DumpSocket(NETLINK_SOCK_DIAG)
with DiagSocket() as ds:
    ds.bind()
    for family in (socket.AF_INET, socket.AF_INET6):
        for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            ext = 1 << (INET_DIAG_INFO - 1) if proto == socket.IPPROTO_TCP else 0
            for r in wire.dump(family, proto, SS_ALL, ext):
                src, dst = r.addresses()
                ours.append([proto, r.state, src, r.sport, dst, r.dport, r.cookie, r.inode, r.uid,
                             r.bytes_acked, r.bytes_received, r.total_retrans])
            for m in ds.get_sock_stats(family=family, protocol=proto, states=SS_ALL, extensions=ext):
                if m.get("idiag_family") not in (socket.AF_INET, socket.AF_INET6):
                    continue
                info = m.get_attr("INET_DIAG_INFO") if proto == socket.IPPROTO_TCP else None
                theirs.append([proto, m["idiag_state"], m["idiag_src"], m["idiag_sport"], m["idiag_dst"],
                               m["idiag_dport"], m["idiag_cookie"], m["idiag_inode"], m["idiag_uid"],
                               info["tcpi_bytes_acked"] if info else None,
                               info["tcpi_bytes_received"] if info else None,
                               info["tcpi_total_retrans"] if info else None])

# destroy notifications: the same datagrams decoded by both
import select
from pyroute2.netlink.diag import MarshalDiag
from appliance.conns.diagwire import DiagRecord, parse
lis = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
lis.bind((0, 0xF))
for s in held:
    s.close()
d_ours, d_theirs = [], []
while select.select([lis], [], [], 1.0)[0]:
    data = lis.recv(65536)
    for r in parse(data):
        if isinstance(r, DiagRecord):
            src, dst = r.addresses()
            d_ours.append([r.protocol, r.state, src, r.sport, dst, r.dport, r.cookie, r.bytes_acked])
    for m in MarshalDiag().parse(data):
        info = m.get_attr("INET_DIAG_INFO") if m.get_attr("INET_DIAG_PROTOCOL") == "06" else None
        d_theirs.append([int(m.get_attr("INET_DIAG_PROTOCOL"), 16), m["idiag_state"], m["idiag_src"],
                         m["idiag_sport"], m["idiag_dst"], m["idiag_dport"], m["idiag_cookie"],
                         info["tcpi_bytes_acked"] if info else None])
print(json.dumps({"ours": sorted(ours), "theirs": sorted(theirs), "d_ours": sorted(d_ours, key=str),
                  "d_theirs": sorted(d_theirs, key=str)}))
"""


def test_decoder_matches_pyroute2() -> None:
    ns = unique_name("sluice-cd-")
    netns.add_namespace(ns)
    try:
        out = netns.run_in(ns, [sys.executable, "-c", SCRIPT], cwd=REPO).stdout
    finally:
        netns.delete_namespace(ns)
    got = json.loads(out)
    ours, theirs = got["ours"], got["theirs"]
    assert ours == theirs
    assert len(ours) == 10  # per family: listener, two ends, connected and bound UDP
    received = sorted(r[10] for r in ours if r[0] == socket.IPPROTO_TCP and r[10])
    assert received == [3000, 3000, 5000, 5000]
    # every socket closed above was announced, and both decoders read the same notifications
    assert got["d_ours"] == got["d_theirs"]
    assert sorted(r[0] for r in got["d_ours"]) == [6] * 6 + [17] * 4
