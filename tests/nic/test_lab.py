"""The lab's SPAN port under the capture profile: it still sees every mirrored frame, and it
never sends one."""

from __future__ import annotations

import pytest

from appliance.lab import netns, traffic
from tests.conftest import require_tool
from tests.nic.conftest import sluice_nic, sluice_nic_json

pytestmark = [pytest.mark.root, pytest.mark.netns]


def test_tuned_span_port_captures_everything_and_never_talks(lab) -> None:  # noqa: ANN001
    require_tool("ethtool")
    ns, span = lab.capture_ns, lab.capture_if
    # As a fresh port comes up on a box: down, ARP and IPv6 on.
    netns.ip("-n", ns, "link", "set", span, "down", "arp", "on")
    netns.run_in(ns, ["sysctl", "-qw", f"net.ipv6.conf.{span}.disable_ipv6=0"])
    before = netns.link_stats(ns, span)

    rc, report = sluice_nic_json(ns, "tune", span)
    assert rc == 0 and report["failed"] == []
    assert {"up", "arp", "ipv6", "promisc"} <= {c["setting"] for c in report["changed"]}
    assert sluice_nic(ns, "check", span).returncode == 0
    assert traffic.ping(lab, "h1", "h2", count=20) == 20
    after = netns.link_stats(ns, span)

    # Each echo request and reply crosses two mirrored ports (h1's and h2's): four copies each.
    assert after["rx_packets"] - before["rx_packets"] >= 4 * 20
    assert after["tx_packets"] == before["tx_packets"]
