"""Times as operators type them, and which index entries a tcpdump filter needs (unit tests)."""

from __future__ import annotations

import calendar
import ipaddress

import pytest

from appliance import filterplan as fp
from appliance import timespec
from appliance.errors import SluiceError

NOW = 1_795_946_520_123_456_789  # 2026-11-29T10:02:00.123456789Z


@pytest.mark.parametrize("text, ns", [
    ("2026-11-29T10:02:00Z", 1_795_946_520 * 10**9),
    ("2026-11-29T10:02:00.5Z", 1_795_946_520 * 10**9 + 500_000_000),
    ("2026-11-29T11:02:00.000000001+01:00", 1_795_946_520 * 10**9 + 1),
    ("2026-11-29 10:02:00", 1_795_946_520 * 10**9),
    ("2026-11-29T05:02:00-05:00", 1_795_946_520 * 10**9),
    ("1795946520.123456789", NOW),
    ("1795946520", 1_795_946_520 * 10**9),
    ("now", NOW),
    ("-15m", NOW - 15 * 60 * 10**9),
    ("-1.5h", NOW - 5400 * 10**9),
    ("-500ms", NOW - 500_000_000),
])
def test_times(text: str, ns: int) -> None:
    assert timespec.parse(text, NOW) == ns
    assert timespec.parse(timespec.format_ns(ns), NOW) == ns


def test_utc_seconds_agrees_with_calendar_every_day_of_four_centuries() -> None:
    """utc_seconds replaces calendar.timegm on extract's path: the same seconds for every day
    from 1900 to 2300 (leap days, century years, 2000) and every month's length as calendar's."""
    day = 86400
    for year in range(1900, 2300):
        for month in range(1, 13):
            assert timespec.month_days(year, month) == calendar.monthrange(year, month)[1], (year, month)
            for d in range(1, timespec.month_days(year, month) + 1):
                want = calendar.timegm((year, month, d, 0, 0, 0, 0, 0, 0))
                assert timespec.utc_seconds(year, month, d) == want, (year, month, d)
    assert timespec.utc_seconds(2026, 11, 29, 23, 59, 60) == calendar.timegm((2026, 11, 29, 23, 59, 60, 0, 0, 0))
    assert timespec.utc_seconds(2028, 2, 29, 12) - timespec.utc_seconds(2028, 2, 28, 12) == day


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2027-02-29T00:00:00Z",
                                  "2026-04-31T00:00:00Z", "1900-02-29T00:00:00Z", "1.2.3", "-15",
                                  "2026-11-29T10:02:00.1234567890Z", "+15m", ""])
def test_bad_times(text: str) -> None:
    with pytest.raises(SluiceError) as exc:
        timespec.parse(text, NOW, "--from")
    assert exc.value.exit_code == 2 and "--from" in str(exc.value)


A = fp.Addr(ipaddress.ip_address("198.51.100.7"))
B = fp.Addr(ipaddress.ip_address("198.51.100.8"))
P80, P443 = fp.Port((6, 17, 132), 80, 80), fp.Port((6, 17, 132), 443, 443)


@pytest.mark.parametrize("expr, plan", [
    ("host 198.51.100.7", A),
    ("src host 198.51.100.7", A),
    ("src or dst host 198.51.100.7", A),
    ("198.51.100.7", A),
    ("host 198.51.100.7 or 198.51.100.8", fp.Or(A, B)),
    ("host 198.51.100.7 and (port 80 or 443)", fp.And(A, fp.Or(P80, P443))),
    ("tcp dst port 80", fp.Port((6,), 80, 80)),
    ("udp portrange 1000-2000", fp.Port((17,), 1000, 2000)),
    ("net 198.51.100.0/24", fp.Net(ipaddress.ip_network("198.51.100.0/24"))),
    ("ip6 host 2001:db8::1", fp.Addr(ipaddress.ip_address("2001:db8::1"))),
    ("icmp and host 198.51.100.7", fp.And(fp.Proto(1), A)),
    ("vlan and host 198.51.100.7", fp.And(fp.Any(), A)),
    ("not host 198.51.100.7", fp.Any()),
    ("tcp[tcpflags] & tcp-syn != 0", fp.Any()),
    ("mpls and host 198.51.100.7", fp.Any()),
    ("ether host 02:00:00:00:00:01", fp.Any()),
    ("host example.org", fp.Any()),
    ("port http", fp.Any()),
    ("net 10.0.0.0 mask 255.0.0.0", fp.Any()),
    ("host 198.51.100.7 and (", fp.Any()),
    ("", fp.Any()),
])
def test_filter_plans(expr: str, plan: fp.Plan) -> None:
    assert fp.plan(expr) == plan


@pytest.mark.parametrize("expr, keys", [
    ("host 198.51.100.7", {A.addr}),
    ("host 198.51.100.7 and port 80", {A.addr}),
    ("host 198.51.100.7 or host 198.51.100.8", {A.addr, B.addr}),
    ("udp port 5060", {(17, 5060)}),
    ("port 53", {(6, 53), (17, 53), (132, 53)}),
    ("host 198.51.100.7 or icmp", None),
    ("portrange 1-5", None),
    ("tcp[tcpflags] & tcp-syn != 0", None),
    ("net 198.51.100.0/24", None),
])
def test_pick_keys(expr: str, keys: set | None) -> None:
    got = fp.pick_keys(fp.plan(expr))
    assert (None if got is None else set(got)) == keys
