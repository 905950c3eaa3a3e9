"""The `ethtool` binary, only for what pyroute2 0.9.7 does not offer.

pyroute2.Ethtool has no driver information (ETHTOOL_GDRVINFO), no timestamping capabilities
(ETHTOOL_GET_TSINFO), no RSS indirection table (-x/-X) nor flow-hash fields (-n/-N); those come
from the binary,
in the current network namespace. A feature that pyroute2's SFEATURES ioctl could not change is
retried once with `ethtool -K` (which speaks netlink and reports per-feature refusals).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field


def _ethtool(*args: str) -> subprocess.CompletedProcess[str] | None:
    binary = shutil.which("ethtool")
    if binary is None:
        return None
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)


def available() -> bool:
    return shutil.which("ethtool") is not None


def driver_info(ifname: str) -> dict[str, str]:
    """`ethtool -i`: driver, version, firmware-version, bus-info...; {} when unknown."""
    proc = _ethtool("-i", ifname)
    if proc is None or proc.returncode != 0:
        return {}
    info: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


@dataclass
class TimestampInfo:
    capabilities: list[str] = field(default_factory=list)
    phc_index: int | None = None
    tx_types: list[str] = field(default_factory=list)
    rx_filters: list[str] = field(default_factory=list)

    @property
    def hw_rx_all(self) -> bool:
        """The NIC can stamp every received frame in hardware (not only PTP packets)."""
        return "hardware-receive" in self.capabilities and "all" in self.rx_filters


def parse_tsinfo(text: str) -> TimestampInfo:
    """Parse `ethtool -T` output (old style 'name (SOF_...)' and new style 'name' lines)."""
    info = TimestampInfo()
    section: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if line[0] in " \t":
            if section is not None:
                section.append(stripped.split()[0])
            continue
        section = None
        key, _, value = stripped.partition(":")
        value = value.strip()
        if key == "Capabilities":
            section = info.capabilities
        elif key == "PTP Hardware Clock":
            info.phc_index = int(value) if value.isdigit() else None
        elif key == "Hardware Transmit Timestamp Modes":
            section = info.tx_types if not value else None
            if value and value != "none":
                info.tx_types.append(value)
        elif key == "Hardware Receive Filter Modes":
            section = info.rx_filters if not value else None
            if value and value != "none":
                info.rx_filters.append(value)
    info.tx_types = [t for t in info.tx_types if t != "none"]
    info.rx_filters = [f for f in info.rx_filters if f != "none"]
    return info


def timestamp_info(ifname: str) -> TimestampInfo | None:
    """`ethtool -T`; None when the binary is missing or the driver answers nothing."""
    proc = _ethtool("-T", ifname)
    if proc is None or proc.returncode != 0:
        return None
    return parse_tsinfo(proc.stdout)


def set_feature(ifname: str, name: str, on: bool) -> str | None:
    """`ethtool -K IF NAME on|off`; None on success, else ethtool's own last line."""
    return _run_set("-K", ifname, name, "on" if on else "off")


@dataclass
class RssTable:
    rings: int  # RX rings the table may point to
    table: list[int]  # the indirection table: hash bucket -> RX ring

    @property
    def equal(self) -> bool:
        """Spread evenly over all rings, as `ethtool -X IF equal N` leaves it."""
        return bool(self.table) and self.table == [i % self.rings for i in range(len(self.table))]


_RSS_HEADER = re.compile(r"^RX flow hash indirection table for \S+ with (\d+) RX ring")


def parse_rss(text: str) -> RssTable | None:
    """Parse `ethtool -x`: the ring count from the header, then rows of '%5u: ' + ' %5u' * 8."""
    rings: int | None = None
    table: list[int] = []
    for line in text.splitlines():
        header = _RSS_HEADER.match(line)
        if header:
            rings = int(header.group(1))
            continue
        if line.startswith("RSS hash key"):
            break
        label, sep, rest = line.partition(":")
        if sep and label.strip().isdigit():
            table.extend(int(v) for v in rest.split())
    if not rings or not table:
        return None
    return RssTable(rings=rings, table=table)


def rss_table(ifname: str) -> RssTable | None:
    """`ethtool -x` (pyroute2 has no ETHTOOL_GRSSH); None when the driver has no RSS table."""
    proc = _ethtool("-x", ifname)
    if proc is None or proc.returncode != 0:
        return None
    return parse_rss(proc.stdout)


def set_rss_equal(ifname: str, rings: int) -> str | None:
    """`ethtool -X IF equal N`; None on success, else ethtool's own last line."""
    return _run_set("-X", ifname, "equal", str(rings))


# `ethtool -n IF rx-flow-hash FLOW` prints one line per field; -N takes these letters.
FLOW_HASH_FIELDS = {
    "L2DA": "m", "VLAN tag": "v", "L3 proto": "t", "IP SA": "s", "IP DA": "d",
    "L4 bytes 0 & 1 [TCP/UDP src port]": "f", "L4 bytes 2 & 3 [TCP/UDP dst port]": "n",
}
_FIELD_ORDER = "mvtsdfn"


def parse_flow_hash(text: str) -> str | None:
    """The hashed fields as -N letters in a fixed order ("sdfn"); "" for None; None if unknown."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or "use these fields for computing Hash flow key" not in lines[0]:
        return None
    letters = {FLOW_HASH_FIELDS[line] for line in lines[1:] if line in FLOW_HASH_FIELDS}
    return "".join(c for c in _FIELD_ORDER if c in letters)


def flow_hash(ifname: str, flow: str) -> str | None:
    """`ethtool -n IF rx-flow-hash FLOW` (pyroute2 has no ETHTOOL_GRXFH)."""
    proc = _ethtool("-n", ifname, "rx-flow-hash", flow)
    if proc is None or proc.returncode != 0:
        return None
    return parse_flow_hash(proc.stdout)


def set_flow_hash(ifname: str, flow: str, fields: str) -> str | None:
    """`ethtool -N IF rx-flow-hash FLOW FIELDS` (it may exit 0 on a refusal: callers re-read)."""
    return _run_set("-N", ifname, "rx-flow-hash", flow, fields)


def _run_set(*args: str) -> str | None:
    proc = _ethtool(*args)
    if proc is None:
        return "ethtool is not installed"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"ethtool exit {proc.returncode}"
    return None


def parse_coalesce_supported(text: str) -> set[str]:
    """The coalescing parameters a driver supports, from `ethtool -c` (netlink prints "n/a" for
    the others): names as ethtool prints them, "adaptive-rx" and "adaptive-tx" for the first line."""
    supported: set[str] = set()
    for line in text.splitlines():
        if line.startswith("Adaptive RX:"):
            m = re.match(r"Adaptive RX:\s*(\S+)\s+TX:\s*(\S+)", line)
            if m:
                supported |= {k for k, v in (("adaptive-rx", m[1]), ("adaptive-tx", m[2])) if v != "n/a"}
            continue
        name, sep, value = line.partition(":")
        if sep and value.strip() and value.strip() != "n/a" and " " not in name:
            supported.add(name.strip())
    return supported


def coalesce_supported(ifname: str) -> set[str] | None:
    """Which coalescing parameters the driver takes: pyroute2's ioctl reads unsupported ones as
    0 and cannot tell; None when ethtool cannot say either."""
    proc = _ethtool("-c", ifname)
    if proc is None or proc.returncode != 0:
        return None
    return parse_coalesce_supported(proc.stdout)
