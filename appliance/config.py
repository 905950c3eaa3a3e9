"""The appliance's one TOML config: schema, defaults, validation with one-line errors.

Every key is declared once in SCHEMA with its default, what it accepts and what it means, so
validation messages, `sluice config show` and docs/supervisor.md all come from one table.
A bad file raises SluiceError (exit 2) whose message names the key and what is allowed.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import re
import reprlib
import socket
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from appliance import DEFAULT_CONFIG_PATH  # noqa: E402,F401 (re-exported: config.DEFAULT_CONFIG_PATH)
from appliance.errors import SluiceError

# The grammar of a size ("1.5G", "512 MiB"): sluice-capture states the same in --print-contract
# (tests/capture/test_contract.py compares the two).
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# What the kernel's dev_valid_name() accepts, less ':' (alias syntax, never a capture port):
# 1-15 characters, not "." or "..", no '/' or white space.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
# Sizes above this are typing errors, not disks (and the writer's 64-bit parser refuses them).
MAX_SIZE = 2**60
# Where a spool can never live: kernel pseudo-filesystems.
_PSEUDO_FS = ("/proc", "/sys", "/dev")


class ConfigError(SluiceError):
    """A bad config: its message names the key and what is allowed (exit 2)."""


def parse_size(text: str | int) -> int:
    """'1G' -> 1073741824; a plain int is bytes. Raises ValueError on anything else."""
    if isinstance(text, bool):
        raise ValueError("not a size")
    if isinstance(text, int):
        if not 0 <= text <= MAX_SIZE:
            raise ValueError("size out of range")
        return text
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not a size")
    m = SIZE_RE.match(text)
    if not m or not m.group(1).isascii():
        raise ValueError("not a size")
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]
    if not math.isfinite(value) or value > MAX_SIZE:
        raise ValueError("size out of range")
    return int(value)


def format_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n and n % _SIZE_UNITS[unit] == 0:
            return f"{n // _SIZE_UNITS[unit]}{unit}"
    return str(n)


@dataclass(frozen=True)
class FreeFloor:
    """A free-space floor: either a fraction of the filesystem or a number of bytes."""

    percent: float | None = None
    nbytes: int | None = None

    def bytes_for(self, fs_size: int) -> int:
        if self.percent is not None:
            return int(fs_size * self.percent / 100.0)
        return int(self.nbytes or 0)

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent:g}%"
        return format_size(int(self.nbytes or 0))


def parse_floor(value: str | int) -> FreeFloor:
    if isinstance(value, str) and value.strip().endswith("%"):
        pct = float(value.strip()[:-1])
        if not 0 <= pct < 100:
            raise ValueError("percent out of range")
        return FreeFloor(percent=pct)
    return FreeFloor(nbytes=parse_size(value))


# ---------------------------------------------------------------------------------------------
# Validators: each takes the raw TOML value and returns the typed value or raises ValueError.
# The `allowed` text of each key is what the error message tells the operator.


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError
    return v


def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError
        return v
    return check


def _seconds(lo: float, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError
        if isinstance(v, int) and not lo <= v <= hi:  # before float(): 10**400 overflows it
            raise ValueError
        if not math.isfinite(v):
            raise ValueError
        if not lo <= float(v) <= hi:
            raise ValueError
        return float(v)
    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError
        return str(v)
    return check


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError
    return v


def _path(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or "\0" in v:
        raise ValueError
    return v


def _backup_targets(v: Any) -> list[str]:
    """Backup targets, each once: absolute directory paths or ssh://[USER@]HOST[:PORT]/PATH."""
    if not isinstance(v, list) or not all(isinstance(t, str) and "\0" not in t and (
            t.startswith("/") or re.fullmatch(r"ssh://[^/@\s]+@?[^/\s]*(:\d+)?/\S*", t)) for t in v):
        raise ValueError
    if len(set(v)) != len(v):
        raise ValueError
    return list(v)


def _optional_abs_path(v: Any) -> str:
    if not isinstance(v, str) or (v and not v.startswith("/")) or "\0" in v:
        raise ValueError
    return v


def _optional_host_port(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError
    if v:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError
    return v


# age recipients (age(1), age-keygen -y): X25519 keys, Bech32 "age1" + 58 characters with
# its checksum, or SSH public keys, which age also encrypts to.
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_SSH_RECIPIENT_RE = re.compile(r"^(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/]+={0,2})(?: \S.*)?$")
RECIPIENTS_ALLOWED = ("a list of distinct age recipients: age1... (what `age-keygen -y` prints) or "
                      "ssh-ed25519 / ssh-rsa public keys")


def _bech32_checksum_ok(hrp: str, data: list[int]) -> bool:
    """BIP 173's checksum (age's recipients are Bech32, not Bech32m)."""
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data:
        top, chk = chk >> 25, (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk == 1


def is_age_recipient(text: str) -> bool:
    if text.startswith("age1"):
        body = text[4:]
        return (len(body) == 58 and all(c in _BECH32 for c in body)
                and _bech32_checksum_ok("age", [_BECH32.index(c) for c in body]))
    m = _SSH_RECIPIENT_RE.match(text)
    if not m:
        return False
    try:
        blob = base64.b64decode(m.group(2), validate=True)
    except ValueError:
        return False
    kind = m.group(1).encode()
    return blob[:4] == len(kind).to_bytes(4, "big") and blob[4:4 + len(kind)] == kind


def _recipient_list(v: Any) -> list[str]:
    """The list's shape; each entry is checked in validate(), whose message names the bad one."""
    if not isinstance(v, list) or not all(isinstance(r, str) for r in v) or len(set(v)) != len(v):
        raise ValueError
    return list(v)


ROTATE_SIZE_MAX = 1 << 42  # 4T: sluice-capture --print-contract (tests/capture/test_contract.py)


def _spool(v: Any) -> str:
    """An absolute directory on a real filesystem: a relative spool would follow the working
    directory of whoever starts the supervisor, and /proc, /sys or /dev hold no files."""
    path = _path(v)
    norm = os.path.normpath(path)
    if not os.path.isabs(path) or norm == "/" or any(norm == p or norm.startswith(p + "/") for p in _PSEUDO_FS):
        raise ValueError
    return path


def _rotate_size(v: Any) -> int:
    n = parse_size(v)
    if n < 4096 or n > ROTATE_SIZE_MAX:
        raise ValueError
    return n


def _mb_or_auto(lo: int, hi: int) -> Callable[[Any], int | str]:
    def check(v: Any) -> int | str:
        return "auto" if v == "auto" else _int_range(lo, hi)(v)
    return check


def ram_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def writer_memory_mb(ring: int | str, buffer: int | str, workers: int, ram: int) -> tuple[int, int]:
    """The ring (per worker) and buffer MiB one sluice-capture takes, `auto` resolved as the writer
    does (native/src/capture/memplan.h; tests/capture/test_contract.py compares the two)."""
    mib = 1 << 20
    ring_mb = min(max(ram // 64 // max(workers, 1) // mib, 64), 256) if ring == "auto" else int(ring)
    buffer_mb = min(max(ram // 16 // mib, 64), 4096) // 4 * 4 if buffer == "auto" else int(buffer)
    return ring_mb, buffer_mb


def _worker_cpus(v: Any) -> str | list[int]:
    if v == "auto":
        return "auto"
    return _cpu_list(v) or []


# Empty (this machine's name) or a name that cannot start like a hidden file or a path.
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,62})?$")


def _host(v: Any) -> str:
    if not isinstance(v, str) or not _HOST_RE.fullmatch(v):
        raise ValueError
    return v


# Empty or a user/group name as useradd accepts it.
_ACCOUNT_RE = re.compile(r"^(?:[a-z_][a-z0-9_-]{0,31})?$")


def _account(v: Any) -> str:
    if not isinstance(v, str) or not _ACCOUNT_RE.fullmatch(v):
        raise ValueError
    return v


def _floor(v: Any) -> FreeFloor:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError
    return parse_floor(v)


def _interfaces(v: Any) -> list[str]:
    if not isinstance(v, list) or not v:
        raise ValueError
    for name in v:
        if not isinstance(name, str) or not _IFNAME_RE.match(name) or name in (".", ".."):
            raise ValueError
    if len(set(v)) != len(v):
        raise ValueError
    return list(v)


def _listen(v: Any) -> tuple[str, int]:
    """'127.0.0.1:9750', '[::1]:9750' or ':9750' (all addresses)."""
    if not isinstance(v, str):
        raise ValueError
    host, sep, port = v.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 <= int(port) <= 65535:
        raise ValueError
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "":
        host = "0.0.0.0"
    elif host != "localhost":
        ipaddress.ip_address(host)  # raises ValueError
    return host, int(port)


def _compression(v: Any) -> str:
    if v in ("none", "zstd"):
        return str(v)
    if isinstance(v, str) and re.fullmatch(r"zstd:(\d{1,2})", v) and 1 <= int(v[5:]) <= 19:
        return v
    raise ValueError


def _cpu_list(v: Any) -> list[int] | None:
    if not isinstance(v, list) or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 4096
                                          for c in v):
        raise ValueError
    return list(v) or None


def _optional_mtu(v: Any) -> int | None:
    n = _int_range(0, 65535)(v)
    if n != 0 and n < 68:
        raise ValueError
    return n or None


def _devices(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(d, str) and d.startswith("/dev/") for d in v):
        raise ValueError
    return list(v)


@dataclass(frozen=True)
class Key:
    default: Any
    check: Callable[[Any], Any]
    allowed: str
    doc: str


def _host_default() -> str:
    name = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname().split(".")[0])
    return name or "sluice"


SCHEMA: dict[str, dict[str, Key]] = {
    "capture": {
        "interfaces": Key(None, _interfaces, "a non-empty list of distinct interface names (1-15 letters, "
                          "digits, '_', '.', '@' or '-'; not \".\" or \"..\")",
                          "capture interfaces; one sluice-capture per interface (required)"),
        "spool": Key(None, _spool, "an absolute directory path, not under /proc, /sys or /dev",
                     "spool directory: captures, journal and state (required)"),
        "rotate_size": Key("1G", _rotate_size, "a size from 4K to 4T such as 512M, 1G or a number of bytes",
                           "start a new file when the current one reaches this size"),
        "rotate_seconds": Key(0, _int_range(0, 86400), "an integer 0..86400 (0 = off)",
                              "also rotate at wall-clock multiples of this many seconds"),
        "format": Key("pcapng", _choice("pcapng", "pcap"), "\"pcapng\" or \"pcap\"", "capture file format"),
        "snaplen": Key(262144, _int_range(64, 262144), "an integer 64..262144", "bytes kept per packet"),
        "slice": Key("none", _choice("none", "header"), "\"none\" or \"header\"",
                     "\"header\" keeps L2-L4 headers only"),
        "filter": Key("", _string, "a tcpdump filter expression (string)",
                      "capture filter compiled by libpcap (empty = everything)"),
        "workers": Key(1, _int_range(1, 64), "an integer 1..64", "AF_PACKET sockets/threads per interface"),
        "fanout": Key("hash", _choice("hash", "lb", "cpu", "qm"), "\"hash\", \"lb\", \"cpu\" or \"qm\"",
                      "PACKET_FANOUT mode between workers"),
        "ring_mb": Key("auto", _mb_or_auto(4, 65536), "\"auto\" or an integer 4..65536",
                       "kernel ring memory per worker (MiB); auto: RAM/64 over the workers, 64..256 each"),
        "buffer_mb": Key("auto", _mb_or_auto(2, 65536), "\"auto\" or an integer 2..65536",
                         "writer staging buffers (MiB); auto: RAM/16, 64..4096 (rings + buffers <= RAM/2)"),
        "worker_cpus": Key("auto", _worker_cpus, "\"auto\" or a list of CPU numbers, one per worker ([] = none)",
                           "CPUs the capture workers are pinned to, in order; auto: the CPUs `nic tune` "
                           "gave the RX queue interrupts (none when [nic] tune is off)"),
        "compression": Key("none", _compression, "\"none\", \"zstd\" or \"zstd:LEVEL\" with LEVEL 1..19",
                           "write .zst files in independent frames"),
        "timestamps": Key("sw", _choice("sw", "hw"), "\"sw\" or \"hw\"", "kernel or NIC hardware timestamps"),
        "backend": Key("afpacket", _choice("afpacket", "pcap"), "\"afpacket\" or \"pcap\"", "packet source"),
        "host": Key("", _host, "a host name of up to 63 letters, digits, '-' and '.', starting and ending with "
                    "a letter or digit, no '..' (empty = this machine's short name)",
                    "host name in file names, the pcapng SHB and the spool subdirectory"),
        "binary": Key("", _string, "a path to sluice-capture (empty = find it)",
                      "the writer program; empty: $SLUICE_CAPTURE, native/build, then PATH"),
        "user": Key("", _account, "a user name of this machine (empty = the supervisor's own user)",
                    "the writer runs as this user once its sockets and rings are open (a supervisor "
                    "started as root); every capability is dropped after start-up in any case"),
        "readers_group": Key("", _account, "a group name of this machine (empty = none)",
                             "capture folders 0750 and files 0640 owned by this group: its members "
                             "read captures, nobody else does"),
    },
    "supervisor": {
        "stats_interval": Key(1.0, _seconds(0.05, 60), "seconds 0.05..60", "period of the writers' stats lines"),
        "stall_timeout": Key(10.0, _seconds(0.5, 3600), "seconds 0.5..3600",
                             "restart a writer that sent no stats, or did not write while packets "
                             "arrived and its buffers filled, for this long"),
        "stall_buffer_fill": Key(0.5, _seconds(0.0, 1.0), "a ratio 0..1",
                                 "buffer fill above which 'packets in, nothing written' counts as a stall"),
        "backoff_initial": Key(1.0, _seconds(0.0, 3600), "seconds 0..3600", "first restart delay"),
        "backoff_max": Key(60.0, _seconds(0.0, 86400), "seconds 0..86400",
                           "restart delay cap (the delay doubles after each quick failure)"),
        "backoff_reset": Key(60.0, _seconds(0.0, 86400), "seconds 0..86400",
                             "a writer that ran this long restarts with the initial delay again"),
        "stop_timeout": Key(10.0, _seconds(0.1, 600), "seconds 0.1..600",
                            "time a writer gets to close its files after SIGTERM before SIGKILL"),
        "state_interval": Key(1.0, _seconds(0.1, 60), "seconds 0.1..60", "how often status.json is rewritten"),
    },
    "privacy": {
        "anonymize_key": Key("", _string, "a path to a 32-byte Crypto-PAn key file (empty = off)",
                             "the writers anonymise every IPv4/IPv6 address before it reaches the disk "
                             "(sluice-capture --anonymize; the file readable by its owner only)"),
        "key_dir": Key("", _string, "a path to a folder of mode 0700 owned by the user the supervisor runs as "
                       "(empty = off)", "as anonymize_key, with a new key every key_rotate_seconds, made and "
                       "kept in this folder by each writer's key keeper, which stays that user while the "
                       "writer drops to [capture] user (sluice-capture --key-dir; docs/privacy.md)"),
        "key_socket": Key("", _string, "a path to sluice-keyd's socket (empty = off)",
                          "as key_dir, the keys kept by root's sluice-keyd behind this socket, for "
                          "writers that never are root (sluice-capture --key-socket; docs/privacy.md)"),
        "key_rotate_seconds": Key(86400, _int_range(1, 86400 * 366), "an integer 1..31622400",
                                  "key period of key_dir and key_socket: a new key at wall-clock multiples "
                                  "of this many seconds, from the next file on"),
        "keep_payload": Key("", _string, "a tcpdump filter expression (empty = none; needs [capture] slice = "
                            "\"header\")", "whole frames for the packets it matches, headers only for the "
                            "rest (sluice-capture --keep-payload)"),
        "drop_payload": Key("", _string, "a tcpdump filter expression (empty = none; needs [capture] slice = "
                            "\"none\")", "headers only for the packets it matches, whole frames for the "
                            "rest (sluice-capture --drop-payload)"),
    },
    "metrics": {
        "listen": Key("127.0.0.1:9750", _listen,
                      "ADDRESS:PORT with an IPv4/IPv6 address (IPv6 in brackets), e.g. 127.0.0.1:9750",
                      "where /metrics is served; port 0 picks a free port"),
        "web_config": Key("", _string, "a path to a web-config YAML file (empty = plain HTTP, no auth)",
                          "TLS certificate and basic-auth users (bcrypt) in the Prometheus exporters' "
                          "web-config format (docs/privacy.md)"),
    },
    "retention": {
        "min_free": Key("10%", _floor, "a percentage such as \"10%\" (0..<100) or a size such as \"50G\"",
                        "free-space floor of the spool filesystem"),
        "margin": Key("1%", _floor, "a percentage such as \"1%\" or a size such as \"2G\"",
                      "deletions stop once free space is this much above the floor"),
        "min_age": Key(0.0, _seconds(0, 10 * 365 * 86400), "seconds >= 0",
                       "never delete a closed file younger than this"),
        "interval": Key(2.0, _seconds(0.1, 3600), "seconds 0.1..3600",
                        "how often free space is checked (also whenever a file closes)"),
    },
    "watchdogs": {
        "interval": Key(5.0, _seconds(0.1, 3600), "seconds 0.1..3600", "period of time, disk, RAID, NIC checks"),
        "clock_journal_interval": Key(60.0, _seconds(1, 86400), "seconds 1..86400",
                                      "how often the clock's offset and error are journaled (`clock`), "
                                      "for `sluice merge` of several boxes"),
        "time_step_threshold": Key(0.5, _seconds(0.001, 3600), "seconds 0.001..3600",
                                   "realtime moving against monotonic by more than this is a clock step"),
        "span_dead_seconds": Key(30.0, _seconds(1, 86400), "seconds 1..86400",
                                 "no packet for this long while the link is up means the SPAN is dead"),
        "raid": Key(True, _bool, "true or false", "watch md arrays (/proc/mdstat and /sys/block/md*)"),
        "mdstat": Key("/proc/mdstat", _path, "a file path", "where to read the md status from"),
        "sys_block": Key("/sys/block", _path, "a directory path", "where md arrays' sysfs folders live"),
        "smart": Key(True, _bool, "true or false", "check SMART health with smartctl when it is installed"),
        "smart_devices": Key([], _devices, "a list of device paths such as [\"/dev/sda\"] (empty = scan)",
                             "disks to check; empty: `smartctl --scan`"),
        "smart_interval": Key(600.0, _seconds(1, 86400), "seconds 1..86400", "period of SMART checks"),
    },
    "nic": {
        "tune": Key(True, _bool, "true or false", "tune each capture interface before its writer starts"),
        "reapply_on_drift": Key(True, _bool, "true or false", "re-tune an interface whose settings drifted"),
        "check_interval": Key(60.0, _seconds(1, 86400), "seconds 1..86400", "period of the tuning drift check"),
        "rx_usecs": Key(50, _int_range(0, 100000), "an integer 0..100000", "interrupt coalescing (rx-usecs)"),
        "mtu": Key(0, _optional_mtu, "0 (leave as is) or an integer 68..65535", "MTU of capture interfaces"),
        "hw_timestamps": Key(True, _bool, "true or false", "enable NIC hardware timestamping"),
        "irq_cpus": Key([], _cpu_list, "a list of CPU numbers (empty = leave as is)", "CPUs for the NIC's IRQs"),
    },
    "pipeline": {
        "backup": Key([], _backup_targets, "a list of distinct absolute directory paths or ssh://[USER@]HOST[:PORT]/PATH",
                      "backup targets: every closed file is copied to each and verified by sha256"),
        "processed": Key("", _optional_abs_path, "an absolute directory path, or empty (repair and dedup off)",
                         "where the repaired and de-duplicated copies go"),
        "publish": Key("", _optional_abs_path, "an absolute directory path, or empty (no publishing)",
                       "where the anonymised, header-only copies and their flows go (needs key_file)"),
        "key_file": Key("", _optional_abs_path, "an absolute file path, or empty",
                        "the Crypto-PAn key (32 bytes raw or 64 hex) for publish; never published"),
        "publish_recipients": Key([], _recipient_list, RECIPIENTS_ALLOWED,
                                  "encrypt every file of the publish set (and its manifest) to these public keys "
                                  "with age; empty: published in clear"),
        "interval": Key(10.0, _seconds(1, 3600), "seconds 1..3600",
                        "`sluice pipeline run` (the service) starts a pass this long after the last ended"),
        "ssh_command": Key("ssh -o BatchMode=yes -o ConnectTimeout=10", _string, "a command line",
                           "the ssh that rsync runs for ssh:// backup targets (key, known hosts)"),
        "ipfix_collector": Key("", _optional_host_port, "empty or HOST:PORT (UDP)",
                               "also send each file's flows as IPFIX to this collector (nfcapd)"),
    },
}

def _meta_sources(value: Any) -> list[dict[str, Any]]:
    from appliance.meta.collect import check_source

    if not isinstance(value, list):
        raise ValueError("a list")
    sources = [check_source(v) for v in value]
    names = [s["name"] for s in sources]
    if len(set(names)) != len(names):
        raise ValueError("names repeat")
    return sources


def _url_or_empty(value: Any) -> str:
    if not isinstance(value, str) or (value and not re.match(r"^https?://[^\s/]+", value)):
        raise ValueError(value)
    return value


SCHEMA["meta"] = {
    "sources": Key([], _meta_sources, "a list of tables {name, kind = \"dns\", \"dhcp\" or \"device\", ...} with "
                   "distinct names (docs/metadata.md)", "the metadata sources `sluice meta collect` reads"),
    "maintenance": Key("", _string, "a path to a TOML file of [[window]] tables (empty = none)",
                       "maintenance windows: journal events and Alertmanager silences"),
    "alertmanager": Key("", _url_or_empty, "an http(s):// URL (empty = no silences)",
                        "the Alertmanager that maintenance windows silence"),
    "retries": Key(2, _int_range(0, 10), "an integer 0..10", "further attempts for a failing source per pass"),
    "retry_delay": Key(5.0, _seconds(0, 600), "seconds 0..600", "wait between attempts"),
}

REQUIRED = {("capture", "interfaces"), ("capture", "spool")}


# Typed views of the sections: code reads cfg.retention.interval, not cfg.get("retention", ...).
# Each has exactly the keys of its SCHEMA table (a test keeps them equal).
@dataclass(frozen=True)
class CaptureSection:
    interfaces: list[str]
    spool: str
    rotate_size: int
    rotate_seconds: int
    format: str
    snaplen: int
    slice: str
    filter: str
    workers: int
    fanout: str
    ring_mb: int | str  # "auto": sized by the writer from the machine's memory
    buffer_mb: int | str
    worker_cpus: str | list[int]
    compression: str
    timestamps: str
    backend: str
    host: str
    binary: str
    user: str
    readers_group: str


@dataclass(frozen=True)
class SupervisorSection:
    stats_interval: float
    stall_timeout: float
    stall_buffer_fill: float
    backoff_initial: float
    backoff_max: float
    backoff_reset: float
    stop_timeout: float
    state_interval: float


@dataclass(frozen=True)
class MetricsSection:
    listen: tuple[str, int]
    web_config: str


@dataclass(frozen=True)
class PrivacySection:
    anonymize_key: str
    key_dir: str
    key_socket: str
    key_rotate_seconds: int
    keep_payload: str
    drop_payload: str


@dataclass(frozen=True)
class RetentionSection:
    min_free: FreeFloor
    margin: FreeFloor
    min_age: float
    interval: float


@dataclass(frozen=True)
class WatchdogsSection:
    interval: float
    clock_journal_interval: float
    time_step_threshold: float
    span_dead_seconds: float
    raid: bool
    mdstat: str
    sys_block: str
    smart: bool
    smart_devices: list[str]
    smart_interval: float


@dataclass(frozen=True)
class NicSection:
    tune: bool
    reapply_on_drift: bool
    check_interval: float
    rx_usecs: int
    mtu: int | None
    hw_timestamps: bool
    irq_cpus: list[int] | None


@dataclass(frozen=True)
class PipelineSection:
    backup: list[str]
    processed: str
    publish: str
    key_file: str
    publish_recipients: list[str]
    interval: float
    ssh_command: str
    ipfix_collector: str


@dataclass(frozen=True)
class MetaSection:
    sources: list[dict[str, Any]]
    maintenance: str
    alertmanager: str
    retries: int
    retry_delay: float


SECTION_TYPES: dict[str, type] = {"capture": CaptureSection, "supervisor": SupervisorSection,
                                  "metrics": MetricsSection, "retention": RetentionSection,
                                  "watchdogs": WatchdogsSection, "nic": NicSection, "pipeline": PipelineSection,
                                  "privacy": PrivacySection, "meta": MetaSection}


def _section(name: str, values: dict[str, Any]) -> Any:
    cls = SECTION_TYPES[name]
    return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass
class Config:
    """The validated config: sections of typed values, every key present (defaults filled in).
    Read it through the typed sections (cfg.capture.snaplen); `sections` is the same as plain
    tables, for comparing two configs and for `config show`."""

    sections: dict[str, dict[str, Any]]
    source: str = ""
    raw_text: str = field(default="", repr=False)

    def get(self, section: str, key: str) -> Any:
        return self.sections[section][key]

    @property
    def capture(self) -> CaptureSection:
        return _section("capture", self.sections["capture"])  # type: ignore[no-any-return]

    @property
    def supervisor(self) -> SupervisorSection:
        return _section("supervisor", self.sections["supervisor"])  # type: ignore[no-any-return]

    @property
    def metrics(self) -> MetricsSection:
        return _section("metrics", self.sections["metrics"])  # type: ignore[no-any-return]

    @property
    def retention(self) -> RetentionSection:
        return _section("retention", self.sections["retention"])  # type: ignore[no-any-return]

    @property
    def watchdogs(self) -> WatchdogsSection:
        return _section("watchdogs", self.sections["watchdogs"])  # type: ignore[no-any-return]

    @property
    def nic(self) -> NicSection:
        return _section("nic", self.sections["nic"])  # type: ignore[no-any-return]

    @property
    def privacy(self) -> PrivacySection:
        return _section("privacy", self.sections["privacy"])  # type: ignore[no-any-return]

    @property
    def pipeline(self) -> PipelineSection:
        return _section("pipeline", self.sections["pipeline"])  # type: ignore[no-any-return]

    @property
    def meta(self) -> MetaSection:
        return _section("meta", self.sections["meta"])  # type: ignore[no-any-return]

    # Shorthands for the values used everywhere.
    @property
    def interfaces(self) -> list[str]:
        return self.sections["capture"]["interfaces"]

    @property
    def spool(self) -> Path:
        return Path(self.sections["capture"]["spool"])

    @property
    def host(self) -> str:
        return self.sections["capture"]["host"] or _host_default()

    @property
    def capture_dir(self) -> Path:
        """Where the writers put files: spool/<host>/ (they add YYYY-MM-DD/ below)."""
        return self.spool / self.host

    @property
    def journal_path(self) -> Path:
        return self.spool / "journal.jsonl"

    @property
    def state_path(self) -> Path:
        return self.spool / "status.json"


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"config {where}: {message}", 2)


def validate(data: dict[str, Any], source: str = "") -> Config:
    where = source or "<text>"
    sections: dict[str, dict[str, Any]] = {}
    for name in data:
        if name not in SCHEMA:
            raise _fail(where, f"unknown section [{name}] (allowed: {', '.join(f'[{s}]' for s in SCHEMA)})")
        if not isinstance(data[name], dict):
            raise _fail(where, f"{name} = {_show(data[name])} is not allowed (allowed: a [{name}] table)")
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        for key in given:
            if key not in keys:
                raise _fail(where, f"[{section}] unknown key '{key}' (allowed: {', '.join(keys)})")
        values: dict[str, Any] = {}
        for key, spec in keys.items():
            if key not in given:
                if (section, key) in REQUIRED:
                    raise _fail(where, f"[{section}] {key} is missing (required; allowed: {spec.allowed})")
                values[key] = spec.check(spec.default)
                continue
            raw = given[key]
            try:
                values[key] = spec.check(raw)
            except (ValueError, TypeError, ArithmeticError, RecursionError):
                raise _fail(where, f"[{section}] {key} = {_show(raw)} is not allowed (allowed: {spec.allowed})") \
                    from None
        sections[section] = values
    sup = sections["supervisor"]
    if sup["backoff_max"] < sup["backoff_initial"]:
        raise _fail(where, "[supervisor] backoff_max must be >= backoff_initial "
                           f"(allowed: seconds >= {sup['backoff_initial']:g})")
    if sup["stall_timeout"] <= sup["stats_interval"] * 2:
        raise _fail(where, "[supervisor] stall_timeout must be more than twice stats_interval "
                           f"(allowed: seconds > {sup['stats_interval'] * 2:g})")
    cap = sections["capture"]
    if cap["compression"] != "none" and cap["format"] != "pcapng":
        raise _fail(where, f"[capture] compression = \"{cap['compression']}\" is not allowed with format = "
                           f"\"{cap['format']}\" (allowed: compression with format = \"pcapng\")")
    if isinstance(cap["worker_cpus"], list) and cap["worker_cpus"] and len(cap["worker_cpus"]) != cap["workers"]:
        raise _fail(where, f"[capture] worker_cpus = {_show(cap['worker_cpus'])} is not allowed with workers = "
                           f"{cap['workers']} (allowed: one CPU per worker, or \"auto\")")
    ring_mb, buffer_mb = writer_memory_mb(cap["ring_mb"], cap["buffer_mb"], cap["workers"], ram_bytes())
    if ring_mb * cap["workers"] + buffer_mb > ram_bytes() // 2 // (1 << 20):
        raise _fail(where, f"[capture] ring_mb = {_show(cap['ring_mb'])} x workers = {cap['workers']} + buffer_mb = "
                           f"{_show(cap['buffer_mb'])} is more than half of this machine's "
                           f"{ram_bytes() >> 20} MiB of memory (allowed: at most {ram_bytes() // 2 >> 20} MiB "
                           "per writer, or \"auto\")")
    priv = sections["privacy"]
    if (priv["anonymize_key"] or priv["key_dir"] or priv["key_socket"]) and cap["format"] != "pcapng":
        raise _fail(where, f"[privacy] anonymisation is not allowed with [capture] format = \"{cap['format']}\" "
                           "(allowed: format = \"pcapng\", whose section header names the key)")
    given = [k for k in ("anonymize_key", "key_dir", "key_socket") if priv[k]]
    if len(given) > 1:
        raise _fail(where, f"[privacy] {' and '.join(given)} are all set (allowed: one of them)"
                    if len(given) > 2 else f"[privacy] {given[0]} and {given[1]} are both set (allowed: one of them)")
    if priv["keep_payload"] and priv["drop_payload"]:
        raise _fail(where, "[privacy] keep_payload and drop_payload are both set (allowed: one of them)")
    if priv["keep_payload"] and cap["slice"] != "header":
        raise _fail(where, "[privacy] keep_payload is not allowed with [capture] slice = \"none\" (allowed: "
                           "slice = \"header\", whose exceptions it names)")
    if priv["drop_payload"] and cap["slice"] != "none":
        raise _fail(where, "[privacy] drop_payload is not allowed with [capture] slice = \"header\" (allowed: "
                           "slice = \"none\"; keep_payload names the exceptions to slice = \"header\")")
    if cap["backend"] == "pcap" and cap["workers"] != 1:
        raise _fail(where, f"[capture] workers = {cap['workers']} is not allowed with backend = \"pcap\" "
                           "(allowed: 1)")
    for recipient in sections["pipeline"]["publish_recipients"]:
        if not is_age_recipient(recipient):
            shown = recipient if len(recipient) <= 90 else recipient[:87] + "..."
            raise _fail(where, f"[pipeline] publish_recipients: {shown!r} is not an age recipient "
                               f"(allowed: {RECIPIENTS_ALLOWED})")
    return Config(sections=sections, source=source)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist = 3, 57, 57, 6


def check_on_this_machine(cfg: Config) -> None:
    """What only the box itself can check (`sluice config check` and the supervisor's start; not
    `load`, which a controller also runs on a box's file): the writer's user and the readers'
    group exist here (the writer looks them up too), the key folder is the writer user's and
    private, the metrics web config and its files load."""
    import grp
    import pwd

    where = cfg.source or "<text>"
    cap = cfg.sections["capture"]
    for key, kind, lookup in (("user", "user", pwd.getpwnam), ("readers_group", "group", grp.getgrnam)):
        if not cap[key]:
            continue
        try:
            lookup(cap[key])
        except KeyError:
            raise _fail(where, f"[capture] {key} = \"{cap[key]}\" is not a {kind} of this machine "
                               f"(allowed: an existing {kind}, or \"\")") from None
    key_dir = cfg.privacy.key_dir
    if key_dir:
        owner = os.geteuid()  # the key keeper stays the user the writer starts as
        try:
            st = os.stat(key_dir)
        except OSError as e:
            raise _fail(where, f"[privacy] key_dir = \"{key_dir}\": {e.strerror}") from None
        why = ("not a folder" if not stat.S_ISDIR(st.st_mode) else
               "not owned by the user the supervisor runs as" if st.st_uid != owner else
               f"of mode {stat.S_IMODE(st.st_mode):04o}, open to group or others" if st.st_mode & 0o077 else "")
        if why:
            raise _fail(where, f"[privacy] key_dir = \"{key_dir}\" is {why} (allowed: a folder of mode 0700 "
                               "owned by the user the supervisor runs as, or key_socket)")
    if cfg.get("metrics", "web_config"):
        from appliance import webconfig

        webconfig.load(cfg.get("metrics", "web_config"))  # one line naming the file's problem


def _show(value: Any) -> str:
    text = _REPR.repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def loads(text: str, source: str = "") -> Config:
    where = source or "<text>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(where, f"TOML syntax error: {exc}") from None
    except RecursionError:
        raise _fail(where, "TOML nested too deeply to read (allowed: the tables and flat lists of the "
                           "schema)") from None
    except (ValueError, ArithmeticError, MemoryError) as exc:  # tomllib on inputs it never expected
        raise _fail(where, f"cannot read: {exc.__class__.__name__}") from None
    try:
        cfg = validate(data, source)
    except RecursionError:
        raise _fail(where, "a value nested too deeply (allowed: the values of the schema)") from None
    cfg.raw_text = text
    return cfg


def load(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config {p}: no such file", 2) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {p}: not UTF-8 text (byte {exc.start})", 2) from None
    except OSError as exc:
        raise ConfigError(f"config {p}: cannot read: {exc.strerror or exc.__class__.__name__}", 2) from None
    return loads(text, str(p))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # repr: the shortest text that reads back as the same float (1234567.0, not 1.23457e+06).
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, FreeFloor):
        return f'"{value}"'
    if isinstance(value, tuple):  # listen address
        host, port = value
        return f'"[{host}]:{port}"' if ":" in host else f'"{host}:{port}"'
    if value is None:
        return "[]"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dumps(cfg: Config) -> str:
    """The effective config as TOML (every key, defaults filled in); loads(dumps(c)) == c."""
    lines: list[str] = []
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key in keys:
            value = cfg.sections[section][key]
            if section == "capture" and key == "rotate_size":
                value = format_size(value)
            if section == "nic" and key == "mtu":
                value = value or 0
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


EXAMPLE_VALUES = {("capture", "interfaces"): ["c0"], ("capture", "spool"): "/data/sluice"}


def example() -> str:
    """An example sluice.toml: every key with its default, what it means and what it allows
    (the required keys with example values). Shipped as config/sluice.example.toml; a test
    keeps that file equal to this."""
    lines = ["# Sluice: every key of /etc/sluice/sluice.toml with its default (docs/supervisor.md).",
             "# Only [capture] interfaces and spool are required; `sluice config check FILE` explains",
             "# any error. Generated by `sluice config example`.", ""]
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key, spec in keys.items():
            required = (section, key) in REQUIRED
            value = EXAMPLE_VALUES[(section, key)] if required else spec.default
            lines.append(f"# {spec.doc} (allowed: {spec.allowed})")
            lines.append(("" if required else "# ") + f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def find_capture_binary(cfg: Config) -> str:
    """The sluice-capture to run: the configured one, $SLUICE_CAPTURE, the repo's build, PATH."""
    import shutil

    configured = cfg.capture.binary
    candidates = [configured] if configured else [
        os.environ.get("SLUICE_CAPTURE", ""),
        str(Path(__file__).resolve().parent.parent / "native" / "build" / "sluice-capture"),
        shutil.which("sluice-capture") or "",
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    if configured:
        raise ConfigError(f"config {cfg.source}: [capture] binary = \"{configured}\" is not an executable file", 2)
    raise SluiceError("sluice-capture not found: build it with `make native` or set [capture] binary", 2)
