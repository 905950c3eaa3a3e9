"""DHCP leases from dnsmasq, ISC dhcpd and Kea lease files, normalised to one table:
`mac, address, hostname, start, end` (unix seconds; a start the file does not give is null).

- dnsmasq (`dhcp-leasefile`): `EXPIRY MAC IP HOSTNAME CLIENT-ID` a line (expiry 0: infinite);
  no start time.
- ISC dhcpd (`dhcpd.leases`): `lease IP { starts W YYYY/MM/DD HH:MM:SS; ends ...;
  hardware ethernet MAC; client-hostname "NAME"; }` blocks, UTC; later blocks replace earlier ones.
- Kea (`kea-leases4.csv` memfile): CSV with a header `address,hwaddr,client_id,valid_lifetime,
  expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,...`; start = expire - valid_lifetime.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from appliance.errors import SluiceError

COLUMNS = ("mac", "address", "hostname", "start", "end")


def parse_dnsmasq(text: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] == "duid":
            continue
        if len(parts) < 4 or not parts[0].isdigit():
            raise SluiceError(f"dnsmasq leases: line {number}: not `EXPIRY MAC IP HOSTNAME CLIENT-ID`")
        expiry = int(parts[0])
        rows.append({"mac": parts[1].lower(), "address": parts[2], "hostname": None if parts[3] == "*" else parts[3],
                     "start": None, "end": None if expiry == 0 else float(expiry)})
    return rows


_LEASE = re.compile(r"lease\s+(\S+)\s*\{(.*?)\}", re.S)


def _isc_time(value: str) -> float | None:
    parts = value.split()
    if not parts or parts[0] == "never":
        return None
    when = dt.datetime.strptime(" ".join(parts[1:3]), "%Y/%m/%d %H:%M:%S").replace(tzinfo=dt.UTC)
    return when.timestamp()


def parse_isc(text: str) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for m in _LEASE.finditer(text):
        fields: dict[str, str] = {}
        for stmt in m.group(2).split(";"):
            stmt = stmt.strip()
            for key in ("starts", "ends", "hardware ethernet", "client-hostname"):
                if stmt.startswith(key + " "):
                    fields[key] = stmt[len(key) + 1:].strip().strip('"')
        try:
            latest[m.group(1)] = {"mac": fields.get("hardware ethernet", "").lower() or None, "address": m.group(1),
                                  "hostname": fields.get("client-hostname"),
                                  "start": _isc_time(fields.get("starts", "")),
                                  "end": _isc_time(fields.get("ends", ""))}
        except ValueError:
            raise SluiceError(f"dhcpd leases: lease {m.group(1)}: a time is not `W YYYY/MM/DD HH:MM:SS`") from None
    return list(latest.values())


def parse_kea(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"address", "hwaddr", "expire", "valid_lifetime"} <= set(reader.fieldnames):
        raise SluiceError("kea leases: no header with address, hwaddr, valid_lifetime, expire")
    latest: dict[str, dict[str, Any]] = {}
    for row in reader:
        try:
            expire, life = int(row["expire"]), int(row["valid_lifetime"])
        except (TypeError, ValueError):
            raise SluiceError(f"kea leases: line {reader.line_num}: expire/valid_lifetime not numbers") from None
        latest[row["address"]] = {"mac": row["hwaddr"].lower() or None, "address": row["address"],
                                  "hostname": row.get("hostname") or None, "start": float(expire - life),
                                  "end": float(expire)}
    return list(latest.values())


PARSERS = {"dnsmasq": parse_dnsmasq, "isc": parse_isc, "kea": parse_kea}


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r["address"], r["mac"] or "")):
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return out.getvalue()
