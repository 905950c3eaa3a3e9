"""`sluice nic` on a real veth in the test's own namespace: tune, check, show, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.lab import netns
from appliance.nic.check import Drift, check_interface
from appliance.nic.profile import CaptureProfile
from appliance.nic.tune import tune_interface
from tests.conftest import VethNs, require_tool
from tests.nic.conftest import INTERRUPTS_FIXTURE, ethtool_features, inside, sluice_nic, sluice_nic_json

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture(autouse=True)
def _ethtool() -> None:
    require_tool("ethtool")


def link_json(ns: str, ifname: str) -> dict:
    return json.loads(netns.ip("-n", ns, "-j", "link", "show", "dev", ifname).stdout)[0]


def ipv6_disabled(ns: str, ifname: str) -> str:
    return netns.run_in(ns, ["sysctl", "-n", f"net.ipv6.conf.{ifname}.disable_ipv6"]).stdout.strip()


def test_tune_turns_offloads_off_promisc_on_arp_and_ipv6_off(veth_ns: VethNs) -> None:
    ns, ifname = veth_ns.ns, veth_ns.rx
    veth_ns.run(["ethtool", "-K", ifname, "gro", "on", "tso", "on", "gso", "on"])
    veth_ns.run(["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=0"])
    before = ethtool_features(ns, ifname)
    assert (before["generic-receive-offload"], before["tcp-segmentation-offload"],
            before["generic-segmentation-offload"]) == ("on", "on", "on")
    assert "PROMISC" not in link_json(ns, ifname)["flags"]

    rc, report = sluice_nic_json(ns, "tune", ifname)

    assert rc == 0, report
    after = ethtool_features(ns, ifname)
    assert after["generic-receive-offload"] == "off"
    assert after["tcp-segmentation-offload"] == "off"
    assert after["generic-segmentation-offload"] == "off"
    assert after["rx-vlan-offload"] == "off"
    assert after["rx-checksumming"] == "off"
    flags = link_json(ns, ifname)["flags"]
    assert "PROMISC" in flags and "NOARP" in flags and "UP" in flags
    assert ipv6_disabled(ns, ifname) == "1"
    changed = {c["setting"]: (c["before"], c["after"]) for c in report["changed"]}
    assert changed["rx-gro"] == (True, False) and changed["tx-tcp-segmentation"] == (True, False)
    assert changed["tx-generic-segmentation"] == (True, False) and changed["promisc"] == (False, True)
    assert changed["ipv6"] == (True, False) and changed["arp"] == (True, False)
    assert report["failed"] == []
    # The peer end was not touched.
    assert ethtool_features(ns, veth_ns.tx)["generic-segmentation-offload"] == "on"


def test_check_exit_0_when_tuned_then_1_naming_gro_after_ethtool_k(veth_ns: VethNs) -> None:
    ns, ifname = veth_ns.ns, veth_ns.rx
    assert sluice_nic(ns, "check", ifname).returncode == 1  # an untuned veth has tso/gso on
    assert sluice_nic(ns, "tune", ifname).returncode == 0
    ok = sluice_nic(ns, "check", ifname)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert "as the capture profile wants" in ok.stdout

    veth_ns.run(["ethtool", "-K", ifname, "gro", "on"])

    drifted = sluice_nic(ns, "check", ifname)
    assert drifted.returncode == 1
    assert "  rx-gro: wanted off, found on" in drifted.stdout.splitlines()
    rc, doc = sluice_nic_json(ns, "check", ifname)
    assert rc == 1 and doc["ok"] is False
    assert doc["drift"] == [{"setting": "rx-gro", "wanted": False, "found": True}]


def test_tune_is_idempotent(veth_ns: VethNs) -> None:
    ns, ifname = veth_ns.ns, veth_ns.rx
    rc1, first = sluice_nic_json(ns, "tune", ifname)
    rc2, second = sluice_nic_json(ns, "tune", ifname)
    assert rc1 == rc2 == 0
    assert first["changed"] != []
    assert second["changed"] == [] and second["failed"] == []
    assert set(second["unchanged"]) >= {c["setting"] for c in first["changed"]}


def test_rings_coalescing_timestamps_unsupported_on_veth_not_failures(veth_ns: VethNs) -> None:
    ns, ifname = veth_ns.ns, veth_ns.rx
    rc, report = sluice_nic_json(ns, "tune", ifname, "--irq-cpus", "0")
    assert rc == 0 and report["ok"] is True and report["failed"] == []
    unsupported = {u["setting"]: u["reason"] for u in report["unsupported"]}
    assert "ring" in unsupported["rx-ring"]
    assert "coalescing" in unsupported["adaptive-rx"] and "coalescing" in unsupported["rx-usecs"]
    assert "hardware" in unsupported["hw-timestamps"]
    assert "no RX queue interrupts" in unsupported["irq-affinity"]
    assert "RSS" in unsupported["rss-indirection"] and "flow hashing" in unsupported["flow-hash"]
    # With no queue IRQs to follow, the workers get the CPUs asked for.
    assert report["worker_cpus"] == [0]
    text = sluice_nic(ns, "tune", ifname)
    assert text.returncode == 0 and text.stderr == ""
    assert any(line.startswith("  unsupported  rx-ring") for line in text.stdout.splitlines())


def test_tap_coalescing_without_rx_usecs_is_unsupported_and_not_drift(veth_ns: VethNs) -> None:
    # tun/tap answers the coalescing ioctl (rx-frames only): rx-usecs reads as 0 there, and
    # only ethtool's "n/a" shows it is not a parameter at all.
    ns = veth_ns.ns
    netns.ip("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
    rc, report = sluice_nic_json(ns, "tune", "tap0")
    assert rc == 0 and report["failed"] == []
    unsupported = {u["setting"]: u["reason"] for u in report["unsupported"]}
    assert unsupported["rx-usecs"] == "the driver has no rx-usecs parameter"
    assert "tap0" in json.loads(sluice_nic(ns, "show", "tap0", "--json").stdout)["interface"]
    assert sluice_nic(ns, "check", "tap0").returncode == 0


def test_a_setting_that_does_not_take_is_a_failure_exit_1(veth_ns: VethNs) -> None:
    # TSO needs transmit checksumming: with tx-checksum-ip-generic off the kernel keeps TSO off,
    # although the driver lists it as changeable.
    ns, ifname = veth_ns.ns, veth_ns.rx
    proc = sluice_nic(ns, "tune", ifname, "--feature-on", "tso", "--feature-off", "tx-checksum-ip-generic")
    assert proc.returncode == 1, proc.stdout
    assert "NOT tuned" in proc.stdout
    assert any(line.startswith("  FAILED       tx-tcp-segmentation: wanted on, found off")
               for line in proc.stdout.splitlines())
    rc, report = sluice_nic_json(ns, "tune", ifname, "--feature-on", "tso",
                                 "--feature-off", "tx-checksum-ip-generic")
    assert rc == 1
    assert [(f["setting"], f["wanted"], f["found"]) for f in report["failed"]] == [("tx-tcp-segmentation", True, False)]


@pytest.mark.parametrize("action", ["show", "tune", "check"])
@pytest.mark.parametrize("name", ["nosuch0", "bad name", "x" * 16, "a/b"])
def test_bad_interface_name_one_line_exit_2(veth_ns: VethNs, action: str, name: str) -> None:
    proc = sluice_nic(veth_ns.ns, action, name)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sluice: ") and name in lines[0]


def test_bad_irq_cpus_one_line_exit_2(veth_ns: VethNs) -> None:
    for arg in ("4096", "x-y"):
        proc = sluice_nic(veth_ns.ns, "tune", veth_ns.rx, "--irq-cpus", arg)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "irq" in proc.stderr


SHOW_KEYS = {"schema", "interface", "driver", "link", "features", "feature_aliases", "rings",
             "channels", "coalesce", "rx_queue_irqs", "timestamping"}
LINK_KEYS = {"index", "address", "admin_up", "operstate", "carrier", "speed_mbps", "mtu", "max_mtu",
             "promisc", "arp", "ipv6_disabled"}


def test_show_json_is_stable_and_as_documented(veth_ns: VethNs) -> None:
    ns, ifname = veth_ns.ns, veth_ns.rx
    first = sluice_nic(ns, "show", ifname, "--json")
    second = sluice_nic(ns, "show", ifname, "--json")
    assert first.returncode == 0 and first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert set(doc) == SHOW_KEYS and doc["schema"] == 1 and doc["interface"] == ifname
    assert set(doc["link"]) == LINK_KEYS
    assert doc["driver"]["name"] == "veth" and doc["driver"]["kind"] == "veth"
    assert doc["rings"] is None and doc["coalesce"] is None and doc["rx_queue_irqs"] == []
    assert doc["channels"]["max_rx"] >= 1
    assert doc["features"]["rx-lro"] == {"on": False, "fixed": True}
    assert doc["features"]["tx-generic-segmentation"] == {"on": True, "fixed": False}
    assert doc["feature_aliases"]["gso"] == "tx-generic-segmentation"
    assert "software-receive" in doc["timestamping"]["capabilities"]
    assert doc["timestamping"]["hw_rx_filters"] == []
    # Every key the docs promise is documented there.
    documented = (Path(__file__).resolve().parents[2] / "docs" / "nic.md").read_text()
    for key in SHOW_KEYS | LINK_KEYS:
        assert f"`{key}`" in documented, key

    assert sluice_nic(ns, "tune", ifname).returncode == 0
    tuned = json.loads(sluice_nic(ns, "show", ifname, "--json").stdout)
    assert tuned["link"]["promisc"] is True and tuned["link"]["arp"] is False
    assert tuned["features"]["tx-generic-segmentation"]["on"] is False
    text = sluice_nic(ns, "show", ifname)
    assert text.returncode == 0 and "promisc       on" in text.stdout


def test_config_file_sets_mtu(veth_ns: VethNs, tmp_path: Path) -> None:
    config = tmp_path / "sluice.toml"
    config.write_text(f'[capture]\ninterfaces = ["{veth_ns.rx}"]\nspool = "{tmp_path}"\n\n'
                      "[nic]\nmtu = 9000\nrx_usecs = 20\n")
    proc = sluice_nic(veth_ns.ns, "tune", veth_ns.rx, "--config", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert link_json(veth_ns.ns, veth_ns.rx)["mtu"] == 9000
    assert "unsupported  rx-usecs (wanted 20)" in proc.stdout


def test_library_api_in_the_current_namespace(veth_ns: VethNs) -> None:
    with inside(veth_ns.ns):
        report = tune_interface(veth_ns.rx, CaptureProfile())
        assert report.ok and report.failed == []
        assert {c.setting for c in report.changed} >= {"tx-tcp-segmentation", "tx-generic-segmentation", "promisc"}
        assert check_interface(veth_ns.rx, CaptureProfile()) == []
    veth_ns.run(["ethtool", "-K", veth_ns.rx, "gro", "on"])
    with inside(veth_ns.ns):
        assert check_interface(veth_ns.rx, CaptureProfile()) == [Drift("rx-gro", False, True)]


def fixture_proc(tmp_path: Path) -> Path:
    """/proc/interrupts of the ixgbe box, with smp_affinity_list files for its IRQs."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "interrupts").write_text(INTERRUPTS_FIXTURE.read_text())
    for number in range(90, 117):
        (proc / "irq" / str(number)).mkdir(parents=True)
        (proc / "irq" / str(number) / "smp_affinity_list").write_text("0-7\n")
    return proc


def test_irq_spreading_applied_and_checked(veth_ns: VethNs, tmp_path: Path) -> None:
    # A veth named like the fixture's ixgbe port, so its queue IRQs are found by name.
    netns.ip("-n", veth_ns.ns, "link", "add", "eth2", "type", "veth", "peer", "name", "eth2peer")
    proc = fixture_proc(tmp_path)
    profile = CaptureProfile(irq_cpus=[2, 3, 4, 5])
    with inside(veth_ns.ns):
        report = tune_interface("eth2", profile, proc=proc)
        assert report.ok, report.failed
        assert report.worker_cpus == [2, 3, 4, 5]
        changed = {c.setting: c.after for c in report.changed}
        assert changed["rx-queue-0-irq"] == [2] and changed["rx-queue-7-irq"] == [5]
        assert check_interface("eth2", profile, proc=proc) == []
    pinned = {n: (proc / "irq" / str(n) / "smp_affinity_list").read_text() for n in range(90, 99)}
    assert [pinned[n] for n in range(90, 98)] == ["2\n", "3\n", "4\n", "5\n"] * 2
    assert pinned[98] == "0-7\n"  # the link vector is not a queue: left alone
    assert (proc / "irq" / "99" / "smp_affinity_list").read_text() == "0-7\n"  # eth3 untouched

    (proc / "irq" / "93" / "smp_affinity_list").write_text("0-7\n")  # irqbalance moved it
    with inside(veth_ns.ns):
        assert check_interface("eth2", profile, proc=proc) == [
            Drift("rx-queue-3-irq", [5], list(range(8)))]
        assert tune_interface("eth2", profile, proc=proc).changed[0].setting == "rx-queue-3-irq"


def test_irq_cpus_none_leaves_irqs_alone(veth_ns: VethNs, tmp_path: Path) -> None:
    netns.ip("-n", veth_ns.ns, "link", "add", "eth2", "type", "veth", "peer", "name", "eth2peer")
    proc = fixture_proc(tmp_path)
    with inside(veth_ns.ns):
        report = tune_interface("eth2", CaptureProfile(), proc=proc)
    assert report.worker_cpus == []
    assert (proc / "irq" / "90" / "smp_affinity_list").read_text() == "0-7\n"


def test_hwtstamp_ioctl_reaches_the_driver(veth_ns: VethNs) -> None:
    import errno

    from appliance.nic import hwtstamp

    with inside(veth_ns.ns):
        with pytest.raises(OSError) as unsupported:
            hwtstamp.get_rx_filter(veth_ns.rx)  # veth has no hardware clock
        with pytest.raises(OSError) as missing:
            hwtstamp.get_rx_filter("nosuch0")
    assert unsupported.value.errno == errno.EOPNOTSUPP
    assert missing.value.errno == errno.ENODEV


def test_tune_refuses_an_interface_with_addresses_in_use_unless_forced(veth_ns: VethNs) -> None:
    """`sluice nic tune lo` (or a management port) would turn off ARP and IPv6 on a live link."""
    veth_ns.run(["ip", "link", "set", "lo", "up"])
    lo = sluice_nic(veth_ns.ns, "tune", "lo")
    assert lo.returncode == 2 and lo.stdout == "", lo
    assert lo.stderr.splitlines() == [lo.stderr.strip()] and "lo carries addresses in use (loopback" in lo.stderr
    assert "NOARP" not in link_json(veth_ns.ns, "lo")["flags"]
    veth_ns.run(["ip", "addr", "add", "198.51.100.7/24", "dev", veth_ns.tx])
    tx = sluice_nic(veth_ns.ns, "tune", veth_ns.tx)
    assert tx.returncode == 2 and "198.51.100.7/24" in tx.stderr, tx
    assert "NOARP" not in link_json(veth_ns.ns, veth_ns.tx)["flags"]
    forced = sluice_nic(veth_ns.ns, "tune", veth_ns.tx, "--force")
    assert forced.returncode == 0, forced
    assert "NOARP" in link_json(veth_ns.ns, veth_ns.tx)["flags"]
    # Only the automatic link-local IPv6 address: a capture port, tuned without --force.
    veth_ns.run(["sysctl", "-qw", f"net.ipv6.conf.{veth_ns.rx}.disable_ipv6=0"])
    assert sluice_nic(veth_ns.ns, "tune", veth_ns.rx).returncode == 0


@pytest.mark.parametrize("action", ["tune", "check"])
def test_unknown_feature_names_are_refused(veth_ns: VethNs, action: str) -> None:
    bad = sluice_nic(veth_ns.ns, action, veth_ns.rx, "--feature-off", "gro-typo")
    assert bad.returncode == 2 and bad.stderr.splitlines() == [bad.stderr.strip()], bad
    assert "gro-typo: not a feature of this kernel" in bad.stderr
    for good in ("gro", "rx-gro", "generic-receive-offload"):  # ethtool's short, kernel and long names
        assert sluice_nic(veth_ns.ns, action, veth_ns.rx, "--feature-off", good).returncode in (0, 1)


def test_one_name_per_setting_across_show_check_and_tune(veth_ns: VethNs) -> None:
    ns, ifname = veth_ns.ns, veth_ns.rx
    assert sluice_nic_json(ns, "tune", ifname)[0] == 0
    veth_ns.run(["ethtool", "-K", ifname, "gro", "on"])
    rc, shown = sluice_nic_json(ns, "show", ifname)
    assert rc == 0 and shown["features"]["rx-gro"]["on"] is True
    rc, checked = sluice_nic_json(ns, "check", ifname)
    assert rc == 1 and [d["setting"] for d in checked["drift"]] == ["rx-gro"]
    rc, tuned = sluice_nic_json(ns, "tune", ifname)
    assert rc == 0 and [c["setting"] for c in tuned["changed"]] == ["rx-gro"]
    # Every feature setting tune reports is a feature `show` lists under the same name.
    names = {*tuned["unchanged"], *(c["setting"] for c in tuned["changed"])}
    features = {n for n in names if n.startswith(("rx-", "tx-"))}
    assert features and features <= set(shown["features"])
