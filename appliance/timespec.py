"""Times as an operator types them, to integer nanoseconds since the epoch (UTC).

Accepted: RFC 3339 / ISO 8601 with or without a fraction (up to 9 digits, kept exactly) and with
or without a zone (`Z`, `+02:00`; none means UTC, the spool's zone), `T` or a space between date
and time; epoch seconds with a fraction (`1700000000.123456789`); `now`; relative to now
(`-15m`, `-2h`, `-90s`, `-1d`, `-500ms`). A bad time raises SluiceError (exit 2).
"""

from __future__ import annotations

import re
import time

from appliance.errors import SluiceError

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$")
_EPOCH = re.compile(r"^(\d{1,11})(?:\.(\d{1,9}))?$")
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d|w)$")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
            "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}

HELP = ("RFC 3339 (2026-11-29T10:02:00.5Z, 2026-11-29 10:02:00+01:00), epoch seconds "
        "(1700000000.25), now, or relative (-15m, -2h, -30s)")


def month_days(year: int, month: int) -> int:
    """Days in that month of the proleptic Gregorian calendar."""
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def utc_seconds(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Seconds since the epoch of a UTC civil time, as calendar.timegm, in integers alone:
    calendar and _strptime would add 4 ms to every `sluice extract` (issue 14). The days are
    counted from 1 March, so a leap day is the last of its year (Hinnant's days_from_civil)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


def _frac_ns(frac: str | None) -> int:
    return int((frac or "").ljust(9, "0")) if frac else 0


def parse(text: str, now_ns: int | None = None, what: str = "time") -> int:
    """Nanoseconds since the epoch for text; SluiceError naming `what` when it is not a time."""
    s = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if s == "now":
        return now
    m = _RELATIVE.match(s)
    if m:
        num, unit = m.group(1), m.group(2)
        whole, _, frac = num.partition(".")
        delta = int(whole) * _UNIT_NS[unit] + (int(frac.ljust(9, "0")[:9]) * _UNIT_NS[unit]) // 10**9 if frac \
            else int(whole) * _UNIT_NS[unit]
        return now - delta
    m = _EPOCH.match(s)
    if m:
        return int(m.group(1)) * 10**9 + _frac_ns(m.group(2))
    m = _RFC3339.match(s)
    if m:
        y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
        sec = int(m.group(6) or 0)
        if not (1 <= mo <= 12 and 1 <= d <= month_days(y, mo) and h <= 23 and mi <= 59 and sec <= 60):
            raise SluiceError(f"{what} '{text}': no such date or time", 2)
        secs = utc_seconds(y, mo, d, h, mi, sec)
        if m.group(9):
            zone = (int(m.group(10)) * 3600 + int(m.group(11)) * 60) * (1 if m.group(9) == "+" else -1)
            secs -= zone
        return secs * 10**9 + _frac_ns(m.group(7))
    raise SluiceError(f"{what} '{text}' is not a time: use {HELP}", 2)


def format_ns(ns: int | None) -> str:
    """RFC 3339 UTC with nanoseconds (the inverse of parse), '-' for None."""
    if ns is None:
        return "-"
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def epoch_arg(ns: int) -> str:
    """The form sluice-pcap --from/--to take: seconds.nanoseconds."""
    secs, frac = divmod(ns, 10**9)
    return f"{secs}.{frac:09d}"
