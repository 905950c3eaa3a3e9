"""The `ethtool` binary, only for what pyroute2 0.9.7 does not offer.

pyroute2.Ethtool has no driver information (ETHTOOL_GDRVINFO), no timestamping capabilities
(ETHTOOL_GET_TSINFO), no RSS indirection table nor flow-hash fields; those come from the binary,
in the current network namespace. A feature that pyroute2's SFEATURES ioctl could not change is
retried once with `ethtool -K` (which speaks netlink and reports per-feature refusals).
"""

from __future__ import annotations

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
    proc = _ethtool("-K", ifname, name, "on" if on else "off")
    if proc is None:
        return "ethtool is not installed"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"ethtool exit {proc.returncode}"
    return None
