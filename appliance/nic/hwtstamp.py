"""Hardware timestamping of received frames: the SIOCGHWTSTAMP / SIOCSHWTSTAMP ioctls.

Neither pyroute2 nor ethtool 6.1 can switch hardware timestamping on (that is what linuxptp's
hwstamp_ctl does), so this is the ioctl itself: struct hwtstamp_config behind ifr_data.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket

SIOCSHWTSTAMP = 0x89B0
SIOCGHWTSTAMP = 0x89B1

# enum hwtstamp_rx_filters (include/uapi/linux/net_tstamp.h): the names ethtool -T prints.
RX_FILTER_NAMES = {
    0: "none", 1: "all", 2: "some", 3: "ptpv1-l4-event", 4: "ptpv1-l4-sync", 5: "ptpv1-l4-delay-req",
    6: "ptpv2-l4-event", 7: "ptpv2-l4-sync", 8: "ptpv2-l4-delay-req", 9: "ptpv2-l2-event",
    10: "ptpv2-l2-sync", 11: "ptpv2-l2-delay-req", 12: "ptpv2-event", 13: "ptpv2-sync",
    14: "ptpv2-delay-req", 15: "ntp-all",
}
HWTSTAMP_FILTER_ALL = 1


class _HwtstampConfig(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_int), ("tx_type", ctypes.c_int), ("rx_filter", ctypes.c_int)]


class _Ifreq(ctypes.Structure):
    _fields_ = [("ifr_name", ctypes.c_char * 16), ("ifr_data", ctypes.c_void_p),
                ("pad", ctypes.c_char * 16)]


def _ioctl(ifname: str, request: int, config: _HwtstampConfig) -> _HwtstampConfig:
    ifr = _Ifreq(ifr_name=ifname.encode(), ifr_data=ctypes.addressof(config))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), request, ifr)
    return config


def get_rx_filter(ifname: str) -> str:
    """The receive filter in force ("none", "all", "ptpv2-event"...); OSError if unsupported."""
    config = _ioctl(ifname, SIOCGHWTSTAMP, _HwtstampConfig())
    return RX_FILTER_NAMES.get(config.rx_filter, str(config.rx_filter))


def set_rx_filter_all(ifname: str) -> None:
    """Stamp every received frame, keeping the transmit setting as it is."""
    config = _ioctl(ifname, SIOCGHWTSTAMP, _HwtstampConfig())
    config.rx_filter = HWTSTAMP_FILTER_ALL
    _ioctl(ifname, SIOCSHWTSTAMP, config)
