"""`sluice extract`: the packets of a spool in a time window that match a tcpdump filter, merged
across files and interfaces in timestamp order, as one capture (pcapng, ns timestamps).

The catalog and each file's index choose the files (filterplan.py says which index entries a
filter needs); one `sluice-pcap merge --from --to --filter` pass does the work in C, reading a
file whose positions say where the filter's addresses or ports are only there (`--positions`). The
writers' current `.part` files are read too, up to their last whole record (`--growing`),
through a descriptor opened before the catalog is read, so a file that closes meanwhile is read
once. The spool is never changed; each extract appends one `extract` event to its journal.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import signal
import sqlite3
import struct
import sys
import time
from pathlib import Path

from appliance import catalog, filterplan
from appliance.errors import SluiceError
from appliance.journal import append_once
from appliance.spoolperm import CAPTURE_FILE_MODE
from appliance.timespec import epoch_arg, format_ns, utc_seconds

PART_SUFFIX = ".part"


# Plain classes, not dataclasses: an extract imports only what it uses (see cli.LIGHT_COMMANDS).
class Query:
    def __init__(self, from_ns: int, to_ns: int, filter: str | None = None, interfaces: list[str] | None = None,
                 output: str = "-", format: str = "pcapng") -> None:
        self.from_ns, self.to_ns, self.filter = from_ns, to_ns, filter
        self.interfaces = interfaces if interfaces is not None else []
        self.output, self.format = output, format


class ExtractResult:
    def __init__(self, packets: int, files: list[str], parts: list[str], skipped_by_index: int, seconds: float,
                 picked: int = 0) -> None:
        self.packets, self.files, self.parts = packets, files, parts
        self.skipped_by_index, self.seconds = skipped_by_index, seconds
        self.picked = picked  # files read only at their positions


def invoking_user() -> tuple[str, bool]:
    """Who asked: the sudo caller when run through sudo, else the process's user."""
    sudo_user = os.environ.get("SUDO_USER")
    if os.getuid() == 0 and sudo_user:
        return sudo_user, True
    try:
        return pwd.getpwuid(os.getuid()).pw_name, False
    except KeyError:
        return str(os.getuid()), False


def _eval(plan: filterplan.Plan, db: sqlite3.Connection, ids: set[int], protocols: dict[int, set[int]]) -> set[int]:
    """The candidate files (of ids) that may hold a packet the plan's filter matches."""
    if isinstance(plan, filterplan.And):
        left = _eval(plan.left, db, ids, protocols)
        return _eval(plan.right, db, left, protocols) if left else left
    if isinstance(plan, filterplan.Or):
        return _eval(plan.left, db, ids, protocols) | _eval(plan.right, db, ids, protocols)
    if isinstance(plan, filterplan.Addr):
        cur = db.execute("SELECT file_id FROM addrs WHERE addr = ?", (catalog.addr_key(plan.addr),))
    elif isinstance(plan, filterplan.Net):
        lo, hi = plan.net.network_address, plan.net.broadcast_address
        cur = db.execute("SELECT file_id FROM addrs WHERE addr BETWEEN ? AND ?",
                         (catalog.addr_key(lo), catalog.addr_key(hi)))
    elif isinstance(plan, filterplan.Port):
        cur = db.execute(f"SELECT DISTINCT file_id FROM ports WHERE proto IN ({', '.join('?' * len(plan.protos))}) "
                         "AND port BETWEEN ? AND ?", (*plan.protos, plan.low, plan.high))
    elif isinstance(plan, filterplan.Proto):
        return {i for i in ids if plan.proto in protocols[i]}
    else:
        return set(ids)
    return ids & {r[0] for r in cur}


def _open_parts(spool: Path, q: Query) -> list[tuple[str, int]]:
    """(path, fd) of every .part that may hold packets of the window, opened read-only now."""
    found = []
    for root, dirs, names in os.walk(spool):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "lost+found"]
        for name in names:
            if not name.endswith(PART_SUFFIX) or name.startswith("."):
                continue
            m = catalog.FILE_NAME.match(name[: -len(PART_SUFFIX)])
            if m and q.interfaces and m.group("iface") not in q.interfaces:
                continue
            if m:
                t = m.group("start")  # 20261129T093110.959035719Z
                start = utc_seconds(int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[9:11]), int(t[11:13]), int(t[13:15]))
                start_ns = start * 10**9 + int(t[16:25])
                if start_ns >= q.to_ns:
                    continue
            path = Path(root) / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # closed meanwhile: the catalog has it
            if os.fstat(fd).st_mtime_ns < q.from_ns or os.fstat(fd).st_size == 0:
                os.close(fd)
                continue
            found.append((str(path), fd))
    return found


class Chosen:
    def __init__(self, path: str, pick: list[str] | None = None, positions: str = "") -> None:
        self.path = path            # absolute
        self.pick = pick            # read only the records of these keys (merge's --addr/--port arguments)
        self.positions = positions


# Reading the records of an address at their offsets beats reading the file through when they are
# at most this share of its packets.
PICK_SHARE = 0.25
MAX_PICKS = 256  # merge's --positions limit


def choose_files(spool: Path, q: Query) -> tuple[list[Chosen], int]:
    """Closed files (in merge order) that may hold matches, each read whole or, when the filter
    needs certain addresses and the file's positions say where their records are, only those;
    and how many files of the window the index ruled out."""
    plan = filterplan.plan(q.filter)
    need = filterplan.pick_keys(plan)
    need = need if need and len(need) <= 64 else None
    addr_keys = [catalog.addr_key(k) for k in need or () if not isinstance(k, tuple)]
    port_keys = [k for k in need or () if isinstance(k, tuple)]
    pick_args = [a for k in sorted(need or (), key=str) for a in
                 (("--port", f"{catalog.PROTO_NAMES[k[0]]}/{k[1]}") if isinstance(k, tuple) else ("--addr", str(k)))]
    db = catalog.connect(spool, readonly=True)
    try:
        window = list(catalog.rows(db, q.from_ns, q.to_ns, q.interfaces))
        ids = {r["id"] for r in window}
        unindexed = {r["id"] for r in window if not r["indexed"]}
        protocols = {r["id"]: {int(k) for k in json.loads(r["protocols"])} for r in window}
        keep = _eval(plan, db, ids - unindexed, protocols) | unindexed
        chosen = []
        for r in window:
            if r["id"] not in keep:
                continue
            c = Chosen(str(spool / r["path"]))
            positions = str(catalog.positions_path(spool, r["path"]))
            # (a path with "=" could not be told apart in merge's --positions FILE=POS)
            if need and r["positions"] and "=" not in positions and sum(1 for x in chosen if x.pick) < MAX_PICKS:
                held = 0
                if addr_keys:
                    held += db.execute(f"SELECT SUM(packets) FROM addrs WHERE file_id = ? AND addr IN "
                                       f"({', '.join('?' * len(addr_keys))})", (r["id"], *addr_keys)).fetchone()[0] or 0
                for proto, port in port_keys:
                    held += db.execute("SELECT SUM(packets) FROM ports WHERE file_id = ? AND proto = ? AND port = ?",
                                       (r["id"], proto, port)).fetchone()[0] or 0
                if held <= PICK_SHARE * r["packets"]:
                    c.pick = pick_args
                    c.positions = positions
            chosen.append(c)
    finally:
        db.close()
    return chosen, len(window) - len(chosen)


def _empty_capture(fmt: str) -> bytes:
    """A capture with no packets (one Ethernet interface, ns timestamps), for a window no file
    touches: what the merge would write with inputs that hold nothing in the window."""
    if fmt == "pcap":
        return struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_len = 20 + len(opts)
    idb = struct.pack("<IIHHI", 1, idb_len, 1, 0, 262144) + opts + struct.pack("<I", idb_len)
    return shb + idb


def _check_output(spool: Path, output: str) -> None:
    if output == "-":
        return
    out = Path(output).absolute()
    parent = out.parent
    if not parent.is_dir():
        raise SluiceError(f"output {output}: no such directory {parent}", 2)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SluiceError(f"output {output}: cannot write in {parent} (permission denied)", 2)
    if out.is_dir():
        raise SluiceError(f"output {output}: is a directory", 2)
    try:
        out.resolve().relative_to(spool.resolve())
    except ValueError:
        return
    raise SluiceError(f"output {output}: inside the spool {spool}; an extract never changes the spool", 2)


def _write_empty(output: str, fmt: str) -> None:
    data = _empty_capture(fmt)
    if output == "-":
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), data)
        return
    tmp = Path(output).absolute().with_name(f".{Path(output).name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, CAPTURE_FILE_MODE)
    with os.fdopen(fd, "wb") as f:  # 0640 as the captures it comes from, like sluice-pcap's outputs
        f.write(data)
    os.replace(tmp, output)


def run(spool: str | os.PathLike[str], q: Query, binary: str | None = None) -> ExtractResult:
    """Extract q from the spool into q.output; the library call behind `sluice extract`."""
    t0 = time.monotonic()
    sp = Path(spool)
    if q.from_ns >= q.to_ns:
        raise SluiceError(f"--from {format_ns(q.from_ns)} is not before --to {format_ns(q.to_ns)}", 2)
    if q.format not in ("pcapng", "pcap"):
        raise SluiceError(f"--format must be pcapng or pcap, not '{q.format}'", 2)
    _check_output(sp, q.output)
    binary = binary or catalog.find_pcap_binary()
    if q.filter is not None and not q.filter.strip():
        q.filter = None
    parts = _open_parts(sp, q)
    try:
        chosen, skipped = choose_files(sp, q)
        part_inodes = {(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for _, fd in parts}
        chosen = [c for c in chosen if (os.stat(c.path).st_dev, os.stat(c.path).st_ino) not in part_inodes]
        files = [c.path for c in chosen]
        cmd = [binary, "merge", "--json", "--format", q.format, "--precision", "ns", "--compress", "none",
               "--from", epoch_arg(q.from_ns), "--to", epoch_arg(q.to_ns), "-o", q.output]
        if q.filter:
            cmd += ["--filter", q.filter]
        for _, fd in parts:
            cmd += ["--growing", f"/dev/fd/{fd}"]
        inputs = files + [f"/dev/fd/{fd}" for _, fd in parts]
        if not chosen and not parts:
            if q.filter:  # still refuse a filter libpcap refuses
                _check_filter(binary, q.filter)
            _write_empty(q.output, q.format)
            packets = 0
        else:
            picked = [c for c in chosen if c.pick]
            # The picked files are read at their keys' records by the same merge (--positions).
            positions = [a for c in picked for a in ("--positions", f"{c.path}={c.positions}")]
            keys = (picked[0].pick or []) if picked else []
            fds = [fd for _, fd in parts]
            status, text = _run_pcap(cmd + keys + positions + inputs, q.output, fds)
            if status == 1 and picked and q.output != "-":
                # A record not where the positions say (a file changed in place): read the files whole.
                status, text = _run_pcap(cmd + inputs, q.output, fds)
            if q.output == "-" and status == -signal.SIGPIPE:
                # The reader had enough (`| tcpdump -c 3`, `| head`): not a failure of ours.
                raise BrokenPipeError(errno.EPIPE, "the reader of stdout closed it")
            packets = _merge_result(status, text)
    finally:
        for _, fd in parts:
            os.close(fd)
    return ExtractResult(packets, files, [p for p, _ in parts], skipped, time.monotonic() - t0,
                         sum(1 for c in chosen if c.pick))


def _run_pcap(argv: list[str], output: str, pass_fds: list[int]) -> tuple[int, str]:
    """Run one sluice-pcap to its end: (exit status, what it printed besides the packets).
    posix_spawn, not subprocess: an extract pays for every import at each query (issue 14).
    With output "-" the packets go straight to our stdout; the summary and errors come back
    through one pipe (stdout and stderr both, so reading it cannot block the child)."""
    sys.stdout.flush()
    r, w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, w, 2)] + ([] if output == "-" else [(os.POSIX_SPAWN_DUP2, w, 1)])
    for fd in pass_fds:
        os.set_inheritable(fd, True)
    try:
        # The signals subprocess restores too: Python ignores SIGPIPE, a child must not.
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions,
                             setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as exc:
        os.close(r)
        raise SluiceError(f"{argv[0]}: {exc.strerror}", 2) from None
    finally:
        os.close(w)
        for fd in pass_fds:
            os.set_inheritable(fd, False)
    with open(r, "rb") as f:
        text = f.read().decode(errors="replace")
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), text


def _check_filter(binary: str, expr: str) -> None:
    status, text = _run_pcap([binary, "convert", "--filter", expr, "/dev/null", "/dev/null"], "/dev/null", [])
    if status != 0 and "--filter" in text:
        raise SluiceError(_pcap_error(text), 2)


def _pcap_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("{")]
    msg = lines[-1] if lines else "sluice-pcap failed"
    return msg.split(": ", 1)[1] if msg.startswith("sluice-pcap ") and ": " in msg else msg


def _merge_result(status: int, text: str) -> int:
    if status != 0:
        raise SluiceError(_pcap_error(text), 2 if status == 2 else 1)
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return int(json.loads(line)["packets_out"])
    raise SluiceError("sluice-pcap merge gave no summary", 1)


def journal(spool: str | os.PathLike[str], q: Query, result: ExtractResult | None, error: str | None) -> None:
    """One `extract` event in SPOOL/journal.jsonl (a journal that cannot be written is reported)."""
    user, via_sudo = invoking_user()
    fields: dict[str, object] = {
        "user": user, "sudo": via_sudo, "uid": os.getuid(),
        "from": format_ns(q.from_ns), "to": format_ns(q.to_ns), "from_ns": q.from_ns, "to_ns": q.to_ns,
        "filter": q.filter, "interfaces": q.interfaces, "output": q.output, "format": q.format,
    }
    if result is not None:
        fields.update(packets=result.packets, files=len(result.files), parts=len(result.parts),
                      skipped_by_index=result.skipped_by_index, picked=result.picked,
                      seconds=round(result.seconds, 3))
    if error is not None:
        fields["error"] = error
    try:
        append_once(Path(spool) / "journal.jsonl", "extract", **fields)
    except OSError as exc:
        print(f"sluice extract: journal {Path(spool) / 'journal.jsonl'}: {exc.strerror}: not journaled",
              file=sys.stderr)
