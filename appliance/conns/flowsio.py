"""Flow records in and out: `sluice-pcap flows` CSV and IPFIX, and the pipeline's Parquet layout.

Inputs are recognised by content, never by name: a folder or a file starting with `PAR1` is
Parquet, a file starting with IPFIX version 10 is IPFIX (RFC 5655 file: messages with their
templates), a file whose first line is the `sluice-pcap flows` CSV header is CSV. Anything else is
refused with one line naming the file.

The Parquet layout (the pipeline's): `ROOT/host=H/date=YYYY-MM-DD/NAME.parquet`, Hive partitioned,
one row per flow, times as integer ns (`first_ns`, `last_ns`, the full precision) and as
timestamps (`first_ts`, `last_ts`, µs, UTC: Spark and Trino refuse Parquet's nanosecond
timestamps). host and date live in the path, as Hive readers (DuckDB, Spark, Trino,
pyarrow.dataset) expect.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.errors import SluiceError

CSV_HEADER = ["first_ts", "last_ts", "src_addr", "dst_addr", "src_port", "dst_port", "proto", "vlan",
              "packets", "bytes", "rev_packets", "rev_bytes", "tcp_flags", "rev_tcp_flags"]
INT_COLUMNS = ["src_port", "dst_port", "proto", "vlan", "packets", "bytes", "rev_packets", "rev_bytes",
               "tcp_flags", "rev_tcp_flags"]
PROCESS_COLUMNS = [f"{side}_{what}" for side in ("src", "dst")
                   for what in ("pid", "comm", "user", "host", "owner_source")]
PEN_REVERSE = 29305
NOT_FLOWS = "not flows (expected sluice-pcap flows CSV or IPFIX, or Parquet flows)"

Flow = dict[str, Any]


def norm_addr(text: str) -> str:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _ts_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 10**9 + int((frac + "000000000")[:9])


def _kind(path: Path) -> str:
    if path.is_dir():
        return "parquet"
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise SluiceError(f"flows {path}: {exc.strerror}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head[:2] == b"\x00\x0a":
        return "ipfix"
    if head.split(b"\n", 1)[0].strip() == ",".join(CSV_HEADER).encode():
        return "csv"
    raise SluiceError(f"flows {path}: {NOT_FLOWS}")


def read_csv(path: Path) -> Iterator[Flow]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        for number, row in enumerate(rows, start=2):
            if len(row) != len(CSV_HEADER):
                raise SluiceError(f"flows {path}: line {number}: {len(row)} fields, expected {len(CSV_HEADER)}")
            try:
                flow: Flow = {"first_ns": _ts_ns(row[0]), "last_ns": _ts_ns(row[1]),
                              "src_addr": norm_addr(row[2]), "dst_addr": norm_addr(row[3])}
                for name, value in zip(CSV_HEADER[4:], row[4:], strict=True):
                    flow[name] = int(value)
            except ValueError as exc:
                raise SluiceError(f"flows {path}: line {number}: {exc}") from None
            yield flow


# IPFIX information elements of sluice-pcap's templates -> our columns
_IE = {(152, 0): "first_ms", (153, 0): "last_ms", (8, 0): "src_addr", (12, 0): "dst_addr",
       (27, 0): "src_addr", (28, 0): "dst_addr", (7, 0): "src_port", (11, 0): "dst_port", (4, 0): "proto",
       (58, 0): "vlan", (6, 0): "tcp_flags", (2, 0): "packets", (1, 0): "bytes",
       (6, PEN_REVERSE): "rev_tcp_flags", (2, PEN_REVERSE): "rev_packets", (1, PEN_REVERSE): "rev_bytes"}


def read_ipfix(path: Path) -> Iterator[Flow]:
    """IPFIX messages (RFC 7011) in a file (RFC 5655), templates from the file itself."""
    data = path.read_bytes()
    templates: dict[int, list[tuple[int, int, int]]] = {}
    pos = 0
    while pos < len(data):
        if len(data) - pos < 16:
            raise SluiceError(f"flows {path}: IPFIX message cut short at byte {pos}")
        version, length = struct.unpack_from(">HH", data, pos)
        if version != 10 or length < 16 or pos + length > len(data):
            raise SluiceError(f"flows {path}: bad IPFIX message header at byte {pos}")
        end, spos = pos + length, pos + 16
        while spos + 4 <= end:
            set_id, set_len = struct.unpack_from(">HH", data, spos)
            if set_len < 4 or spos + set_len > end:
                raise SluiceError(f"flows {path}: bad IPFIX set at byte {spos}")
            body, body_end = spos + 4, spos + set_len
            if set_id == 2:
                while body + 4 <= body_end:
                    tid, count = struct.unpack_from(">HH", data, body)
                    body += 4
                    fields = []
                    for _ in range(count):
                        ie, flen = struct.unpack_from(">HH", data, body)
                        body += 4
                        pen = 0
                        if ie & 0x8000:
                            (pen,) = struct.unpack_from(">I", data, body)
                            body += 4
                        fields.append((ie & 0x7FFF, pen, flen))
                    templates[tid] = fields
            elif set_id >= 256:
                fields_or_none = templates.get(set_id)
                if fields_or_none is None:
                    raise SluiceError(f"flows {path}: IPFIX data set {set_id} without its template")
                rec_len = sum(f[2] for f in fields_or_none)
                while rec_len and body + rec_len <= body_end:
                    yield _ipfix_record(data, body, fields_or_none)
                    body += rec_len
            spos = body_end
        pos = end


def _ipfix_record(data: bytes, pos: int, fields: list[tuple[int, int, int]]) -> Flow:
    flow: Flow = {"vlan": 0, "tcp_flags": 0, "rev_tcp_flags": 0, "rev_packets": 0, "rev_bytes": 0}
    for ie, pen, flen in fields:
        raw = data[pos:pos + flen]
        pos += flen
        name = _IE.get((ie, pen))
        if name is None:
            continue
        if name in ("src_addr", "dst_addr"):
            flow[name] = norm_addr(str(ipaddress.ip_address(raw)))
        else:
            flow[name] = int.from_bytes(raw, "big")
    flow["first_ns"] = flow.pop("first_ms") * 10**6
    flow["last_ns"] = flow.pop("last_ms") * 10**6
    return flow


def read_parquet(path: Path) -> Iterator[Flow]:
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(str(path), format="parquet", partitioning="hive")
        table = dataset.to_table()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SluiceError(f"flows {path}: {NOT_FLOWS}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in ["first_ns", "last_ns", *CSV_HEADER[2:]] if c not in table.column_names]
    if missing:
        raise SluiceError(f"flows {path}: {NOT_FLOWS}: no column {missing[0]}")
    keep = ["first_ns", "last_ns", *CSV_HEADER[2:]] + (["host"] if "host" in table.column_names else [])
    for row in table.select(keep).to_pylist():
        row["src_addr"], row["dst_addr"] = norm_addr(row["src_addr"]), norm_addr(row["dst_addr"])
        if row.get("host") is not None:
            row["host"] = str(row["host"])
        yield row


def read_flows(path: str) -> list[Flow]:
    p = Path(path)
    if not p.exists():
        raise SluiceError(f"flows {path}: no such file or folder")
    kind = _kind(p)
    reader = {"csv": read_csv, "ipfix": read_ipfix, "parquet": read_parquet}[kind]
    try:
        return list(reader(p))
    except (OSError, UnicodeDecodeError) as exc:
        raise SluiceError(f"flows {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")  # TIMESTAMP(MICROS): NANOS is illegal to Spark 4 and Trino
    fields = [("first_ns", pa.int64()), ("last_ns", pa.int64()), ("first_ts", ts), ("last_ts", ts),
              ("src_addr", pa.string()), ("dst_addr", pa.string()), ("src_port", pa.int32()),
              ("dst_port", pa.int32()), ("proto", pa.int16()), ("vlan", pa.int32()),
              ("packets", pa.int64()), ("bytes", pa.int64()), ("rev_packets", pa.int64()),
              ("rev_bytes", pa.int64()), ("tcp_flags", pa.int16()), ("rev_tcp_flags", pa.int16())]
    for side in ("src", "dst"):
        fields += [(f"{side}_pid", pa.int64()), (f"{side}_comm", pa.string()), (f"{side}_user", pa.string()),
                   (f"{side}_host", pa.string()), (f"{side}_owner_source", pa.string())]
    return pa.schema(fields)


def write_parquet(flows: list[Flow], root: str, default_host: str, stem: str = "") -> list[Path]:
    """Write flows under ROOT/host=H/date=D/, one file per partition, each renamed when whole.

    A file's name is STEM.parquet (the pipeline: the capture file's name), or else comes from its
    flows' time span, so running the same join again replaces its own output instead of adding a
    copy.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    parts: dict[tuple[str, str], list[Flow]] = {}
    for f in flows:
        host = f.get("host") or default_host
        date = dt.datetime.fromtimestamp(f["first_ns"] / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")
        parts.setdefault((host, date), []).append(f)
    written = []
    for (host, date), rows in sorted(parts.items()):
        folder = Path(root) / f"host={host}" / f"date={date}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SluiceError(f"output {folder}: {exc.strerror}") from None
        rows.sort(key=lambda r: (r["first_ns"], r["last_ns"]))
        columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        for r in rows:
            for name in schema.names:
                if name == "first_ts":
                    columns[name].append(r["first_ns"] // 1000)
                elif name == "last_ts":
                    columns[name].append(r["last_ns"] // 1000)
                else:
                    columns[name].append(r.get(name))
        table = pa.Table.from_pydict(columns, schema=schema)
        name = f"{stem}.parquet" if stem else f"conns-{rows[0]['first_ns']}-{rows[-1]['last_ns']}.parquet"
        final = folder / name
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SluiceError(f"output {final}: {exc.strerror or exc}") from None
        written.append(final)
    return written
