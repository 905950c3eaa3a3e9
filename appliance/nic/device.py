"""One network interface in the current network namespace, read and changed through pyroute2.

IPRoute covers link state, promiscuous mode, ARP and MTU; pyroute2.Ethtool covers features,
rings, channels and coalescing. What pyroute2 lacks lives in ethtool_bin.py (the ethtool
binary) and hwtstamp.py (the SIOCSHWTSTAMP ioctl). A reading the driver does not support is
None, never an exception: the caller reports it as unsupported.
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import Ethtool, IPRoute
from pyroute2.ethtool.ioctl import NoSuchDevice, NotSupportedError
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOOPBACK, IFF_NOARP, IFF_PROMISC, IFF_UP

from appliance.errors import SluiceError

RT_SCOPE_LINK = 253  # rtnetlink.h: an IPv6 link-local address (fe80::/10)

_IFNAME = re.compile(r"^[^\s/:]{1,15}$")
PROC_SYS_IPV6 = Path("/proc/sys/net/ipv6/conf")


@dataclass
class LinkState:
    index: int
    kind: str | None  # IFLA_INFO_KIND: "veth", "bridge"...; None for a physical NIC
    address: str | None
    admin_up: bool
    operstate: str
    carrier: bool
    mtu: int
    max_mtu: int | None
    promisc: bool
    noarp: bool


@dataclass
class Feature:
    on: bool
    fixed: bool  # the driver does not let it change ("[fixed]" in ethtool -k)


class Device:
    """An open interface: IPRoute and Ethtool sockets of the current namespace, closed on exit."""

    def __init__(self, ifname: str) -> None:
        if not _IFNAME.match(ifname):
            raise SluiceError(f"bad interface name {ifname!r}: 1-15 characters, no spaces, '/' or ':'")
        self.ifname = ifname
        self.ipr = IPRoute()
        try:
            found = self.ipr.link_lookup(ifname=ifname)
        except NetlinkError as exc:
            self.ipr.close()
            raise SluiceError(f"cannot look up interface {ifname}: {exc}") from None
        if not found:
            self.ipr.close()
            raise SluiceError(f"no such interface: {ifname} (in this network namespace)")
        self.index: int = found[0]
        self.eth = Ethtool()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.eth.close()
        self.ipr.close()

    # --- link (IPRoute) -------------------------------------------------------------------

    def link(self) -> LinkState:
        try:
            msg = self.ipr.get_links(self.index)[0]
        except NetlinkError as exc:
            raise SluiceError(f"{self.ifname}: interface went away ({exc})") from None
        flags = int(msg["flags"])
        info = msg.get_attr("IFLA_LINKINFO")
        return LinkState(
            index=self.index,
            kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
            address=msg.get_attr("IFLA_ADDRESS"),
            admin_up=bool(flags & IFF_UP),
            operstate=str(msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
            carrier=bool(msg.get_attr("IFLA_CARRIER")),
            mtu=int(msg.get_attr("IFLA_MTU")),
            max_mtu=msg.get_attr("IFLA_MAX_MTU"),
            promisc=bool(flags & IFF_PROMISC),
            noarp=bool(flags & IFF_NOARP),
        )

    def addresses_in_use(self) -> list[str]:
        """Addresses that make this interface a working link of the box rather than a capture
        port: loopback, any IPv4 address, any IPv6 address beyond the automatic link-local one."""
        try:
            flags = int(self.ipr.get_links(self.index)[0]["flags"])
            msgs = self.ipr.get_addr(index=self.index)
        except NetlinkError as exc:
            raise SluiceError(f"{self.ifname}: cannot read its addresses ({exc})") from None
        found = ["loopback"] if flags & IFF_LOOPBACK else []
        for msg in msgs:
            address = msg.get_attr("IFA_ADDRESS")
            if msg["family"] == socket.AF_INET6 and msg["scope"] == RT_SCOPE_LINK:
                continue
            found.append(f"{address}/{msg['prefixlen']}")
        return found

    def set_flag(self, flag: int, on: bool) -> None:
        self._link_set(flags=flag if on else 0, change=flag)

    def set_mtu(self, mtu: int) -> None:
        self._link_set(mtu=mtu)

    def _link_set(self, **kwargs: int) -> None:
        try:
            self.ipr.link("set", index=self.index, **kwargs)
        except NetlinkError as exc:
            raise OSError(exc.code, _netlink_msg(exc)) from None

    # --- sysctl (/proc/sys is per network namespace: it shows the opener's namespace) -------

    def ipv6_disabled(self) -> bool | None:
        """True/False from disable_ipv6; None when the kernel has no IPv6 at all."""
        path = PROC_SYS_IPV6 / self.ifname / "disable_ipv6"
        try:
            return path.read_text().strip() == "1"
        except FileNotFoundError:
            return None

    def set_ipv6_disabled(self, disabled: bool) -> None:
        (PROC_SYS_IPV6 / self.ifname / "disable_ipv6").write_text("1\n" if disabled else "0\n")

    # --- ethtool (pyroute2.Ethtool) ----------------------------------------------------------

    def speed_mbps(self) -> int | None:
        try:
            return self.eth.get_link_mode(self.ifname).speed
        except (NotSupportedError, NoSuchDevice, OSError):
            return None

    def features(self) -> dict[str, Feature]:
        try:
            feats = self.eth.get_features(self.ifname).features
        except NoSuchDevice:
            raise SluiceError(f"{self.ifname}: interface went away") from None
        return {name: Feature(on=bool(f.enable), fixed=not f.available)
                for name, f in feats.items() if name}

    def set_features(self, wanted: dict[str, bool]) -> None:
        """Request every feature in wanted at once (one SFEATURES ioctl, as `ethtool -K` does)."""
        current = self.eth.get_features(self.ifname)
        for name, on in wanted.items():
            current.features[name].enable = on
        self.eth.set_features(self.ifname, current)

    def rings(self) -> dict[str, int] | None:
        try:
            r = self.eth.get_rings(self.ifname)
        except (NotSupportedError, OSError):
            return None
        return {"rx": int(r.rx or 0), "rx_max": int(r.rx_max or 0),
                "tx": int(r.tx or 0), "tx_max": int(r.tx_max or 0)}

    def set_rx_ring(self, size: int) -> None:
        self.eth.set_rings(self.ifname, rx=size)

    def channels(self) -> dict[str, int] | None:
        try:
            return dict(self.eth.get_channels(self.ifname)._asdict())
        except (NotSupportedError, OSError):
            return None

    def coalesce(self) -> dict[str, int] | None:
        try:
            c = self.eth.get_coalesce(self.ifname)
        except (NotSupportedError, OSError):
            return None
        return {"adaptive_rx": c["use_adaptive_rx_coalesce"], "rx_usecs": c["rx_coalesce_usecs"],
                "rx_frames": c["rx_max_coalesced_frames"], "adaptive_tx": c["use_adaptive_tx_coalesce"],
                "tx_usecs": c["tx_coalesce_usecs"]}

    def set_coalesce(self, adaptive_rx: bool, rx_usecs: int) -> None:
        self.eth.set_coalesce(self.ifname, {"use_adaptive_rx_coalesce": int(adaptive_rx),
                                            "rx_coalesce_usecs": rx_usecs})


def _netlink_msg(exc: NetlinkError) -> str:
    return exc.args[1] if len(exc.args) > 1 else errno.errorcode.get(exc.code, str(exc.code))


def is_unsupported(exc: BaseException) -> bool:
    """An error that means 'this driver cannot do that' rather than 'it went wrong'."""
    if isinstance(exc, NotSupportedError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP)
