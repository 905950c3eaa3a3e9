"""Parsers of the ethtool binary's output (the gaps pyroute2 leaves): RSS, flow hash, tsinfo."""

from __future__ import annotations

from pathlib import Path

from appliance.nic import ethtool_bin

DATA = Path(__file__).resolve().parent / "data"


def test_rss_table_equal_over_all_rings() -> None:
    rss = ethtool_bin.parse_rss((DATA / "ethtool-x-ixgbe-equal8.txt").read_text())
    assert rss is not None
    assert rss.rings == 8 and len(rss.table) == 128 and rss.table[:9] == [0, 1, 2, 3, 4, 5, 6, 7, 0]
    assert rss.equal


def test_rss_table_using_half_the_rings_is_not_equal() -> None:
    rss = ethtool_bin.parse_rss((DATA / "ethtool-x-ixgbe-equal4-of-8.txt").read_text())
    assert rss is not None and rss.rings == 8 and set(rss.table) == {0, 1, 2, 3}
    assert not rss.equal


def test_rss_without_table() -> None:
    assert ethtool_bin.parse_rss("RX flow hash indirection table for x with 4 RX ring(s):\n"
                                 "Operation not supported\nRSS hash key:\nOperation not supported\n") is None


def test_flow_hash_fields_as_ethtool_letters() -> None:
    assert ethtool_bin.parse_flow_hash((DATA / "ethtool-n-udp4-ips-only.txt").read_text()) == "sd"
    assert ethtool_bin.parse_flow_hash((DATA / "ethtool-n-tcp4-sdfn.txt").read_text()) == "sdfn"
    assert ethtool_bin.parse_flow_hash("TCP over IPV4 flows use these fields for computing Hash "
                                       "flow key:\nNone\n") == ""
    assert ethtool_bin.parse_flow_hash("Cannot get RX network flow hashing options") is None


def test_tsinfo_of_a_ptp_nic_and_of_veth() -> None:
    # ethtool 6.1 -T of an i210-like NIC (old style lines carry the kernel's constant names).
    ptp = ethtool_bin.parse_tsinfo(
        "Time stamping parameters for eth1:\nCapabilities:\n"
        "\thardware-transmit     (SOF_TIMESTAMPING_TX_HARDWARE)\n"
        "\tsoftware-transmit     (SOF_TIMESTAMPING_TX_SOFTWARE)\n"
        "\thardware-receive      (SOF_TIMESTAMPING_RX_HARDWARE)\n"
        "\tsoftware-receive      (SOF_TIMESTAMPING_RX_SOFTWARE)\n"
        "\tsoftware-system-clock (SOF_TIMESTAMPING_SOFTWARE)\n"
        "\thardware-raw-clock    (SOF_TIMESTAMPING_RAW_HARDWARE)\n"
        "PTP Hardware Clock: 1\nHardware Transmit Timestamp Modes:\n"
        "\toff                   (HWTSTAMP_TX_OFF)\n\ton                    (HWTSTAMP_TX_ON)\n"
        "Hardware Receive Filter Modes:\n\tnone                  (HWTSTAMP_FILTER_NONE)\n"
        "\tall                   (HWTSTAMP_FILTER_ALL)\n")
    assert ptp.phc_index == 1 and ptp.hw_rx_all
    assert ptp.rx_filters == ["all"] and ptp.tx_types == ["off", "on"]
    ptp_only = ethtool_bin.parse_tsinfo(
        "Time stamping parameters for eth0:\nCapabilities:\n\thardware-receive\n"
        "PTP Hardware Clock: 0\nHardware Transmit Timestamp Modes:\n\ton\n"
        "Hardware Receive Filter Modes:\n\tnone\n\tptpv2-event\n")
    assert ptp_only.rx_filters == ["ptpv2-event"] and not ptp_only.hw_rx_all
    veth = ethtool_bin.parse_tsinfo(
        "Time stamping parameters for rx0:\nCapabilities:\n\tsoftware-transmit\n\tsoftware-receive\n"
        "\tsoftware-system-clock\nPTP Hardware Clock: none\nHardware Transmit Timestamp Modes: none\n"
        "Hardware Receive Filter Modes: none\n")
    assert veth.phc_index is None and veth.rx_filters == [] and veth.tx_types == []
    assert veth.capabilities == ["software-transmit", "software-receive", "software-system-clock"]


def test_coalesce_supported_parameters() -> None:
    # ethtool 6.1 -c of a tap device: only rx-frames is a real parameter.
    tap = ethtool_bin.parse_coalesce_supported(
        "Coalesce parameters for tap0:\nAdaptive RX: n/a  TX: n/a\nstats-block-usecs: n/a\n"
        "sample-interval: n/a\npkt-rate-low: n/a\npkt-rate-high: n/a\n\nrx-usecs: n/a\nrx-frames: 0\n"
        "rx-usecs-irq: n/a\nrx-frames-irq: n/a\n\ntx-usecs: n/a\ntx-frames: n/a\n")
    assert tap == {"rx-frames"}
    # ... and of an ixgbe port (adaptive interrupt moderation via rx-usecs 1, "itr" in the driver).
    ixgbe = ethtool_bin.parse_coalesce_supported(
        "Coalesce parameters for eth2:\nAdaptive RX: off  TX: off\nstats-block-usecs: n/a\n"
        "sample-interval: n/a\npkt-rate-low: n/a\npkt-rate-high: n/a\n\nrx-usecs: 1\nrx-frames: n/a\n"
        "rx-usecs-irq: n/a\nrx-frames-irq: n/a\n\ntx-usecs: 0\ntx-frames: n/a\ntx-usecs-irq: n/a\n"
        "tx-frames-irq: 256\n")
    assert {"adaptive-rx", "adaptive-tx", "rx-usecs", "tx-usecs", "tx-frames-irq"} == ixgbe
