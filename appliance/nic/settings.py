"""Profile vs interface: every setting the profile cares about, as wanted, found and how to fix it.

`tune` and `check` both start from `collect_settings`, so they can never disagree about what
"tuned" means: check reports the settings whose found differs from wanted; tune applies them and
collects again to verify.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2.ethtool.ioctl import EthtoolError
from pyroute2.netlink.rtnl.ifinfmsg import IFF_NOARP, IFF_PROMISC, IFF_UP

from appliance.errors import SluiceError
from appliance.nic import ethtool_bin, hwtstamp, irq
from appliance.nic.device import Device
from appliance.nic.profile import CaptureProfile

Value = bool | int | str | list[int] | None


@dataclass
class Setting:
    name: str
    wanted: Value
    found: Value
    # None when it can be changed; otherwise why not ("fixed by the driver", "not supported")
    unsupported: str | None = None
    apply: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def drifted(self) -> bool:
        return self.unsupported is None and self.found != self.wanted


@dataclass
class Plan:
    settings: list[Setting]
    capture_cpus: list[int]
    worker_cpus: list[int]


def collect_settings(dev: Device, profile: CaptureProfile, proc: Path = irq.PROC) -> Plan:
    settings: list[Setting] = []
    settings += _link_settings(dev, profile)
    settings += _feature_settings(dev, profile)
    settings += _ring_settings(dev, profile)
    settings += _coalesce_settings(dev, profile)
    settings += _rss_settings(dev, profile)
    settings += _timestamp_settings(dev, profile)
    irq_settings, capture_cpus, workers = _irq_settings(dev, profile, proc)
    settings += irq_settings
    # Up last: by then ARP and IPv6 are off, so coming up sends nothing out of the port.
    link = dev.link()
    if profile.admin_up:
        settings.append(Setting("up", True, link.admin_up, apply=lambda: dev.set_flag(IFF_UP, True)))
    return Plan(settings=settings, capture_cpus=capture_cpus, worker_cpus=workers)


def _link_settings(dev: Device, profile: CaptureProfile) -> list[Setting]:
    link = dev.link()
    out: list[Setting] = []
    if profile.ipv6_off:
        disabled = dev.ipv6_disabled()
        if disabled is None:  # no IPv6 in this kernel: nothing can talk IPv6
            out.append(Setting("ipv6", False, False))
        else:
            out.append(Setting("ipv6", False, not disabled,
                               apply=lambda: dev.set_ipv6_disabled(True)))
    if profile.arp_off:
        out.append(Setting("arp", False, not link.noarp, apply=lambda: dev.set_flag(IFF_NOARP, True)))
    if profile.promiscuous:
        out.append(Setting("promisc", True, link.promisc,
                           apply=lambda: dev.set_flag(IFF_PROMISC, True)))
    if profile.mtu is not None:
        mtu = profile.mtu
        unsupported = None
        if link.max_mtu is not None and mtu > link.max_mtu:
            unsupported = f"the driver's maximum MTU is {link.max_mtu}"
        out.append(Setting("mtu", mtu, link.mtu, unsupported, apply=lambda: dev.set_mtu(mtu)))
    return out


def _feature_settings(dev: Device, profile: CaptureProfile) -> list[Setting]:
    feats = dev.features()
    out: list[Setting] = []
    wanted = {name: False for name in profile.features_off}
    wanted.update({name: True for name in profile.features_on})
    for name, on in wanted.items():
        feat = feats.get(name)
        if feat is None:  # not a feature of this kernel (ufo is gone since 4.14): nothing to do
            continue
        unsupported = "fixed by the driver" if feat.fixed and feat.on != on else None
        out.append(Setting(name, on, feat.on, unsupported,
                           apply=_feature_applier(dev, name, on)))
    return out


def _feature_applier(dev: Device, feature: str, on: bool) -> Callable[[], None]:
    def apply() -> None:
        try:
            dev.set_features({feature: on})
        except (OSError, EthtoolError) as exc:
            # pyroute2 sends the old SFEATURES ioctl and raises on any partial refusal
            # (ETHTOOL_F_WISH); ethtool -K speaks netlink and names what the kernel kept.
            if isinstance(exc, OSError) and exc.errno in (errno.EPERM, errno.EACCES):
                raise
            err = ethtool_bin.set_feature(dev.ifname, feature, on)
            if err is not None:
                raise FeatureRefused(f"ethtool -K {feature} {'on' if on else 'off'}: {err}") from None
    return apply


class FeatureRefused(Exception):
    """The kernel or driver kept a feature that it lists as changeable: a tuning failure."""


def _ring_settings(dev: Device, profile: CaptureProfile) -> list[Setting]:
    if not profile.rings_max:
        return []
    rings = dev.rings()
    if rings is None:
        return [Setting("rx-ring", "max", None, "the driver has no ring parameters")]
    size = rings["rx_max"]
    return [Setting("rx-ring", size, rings["rx"], apply=lambda: dev.set_rx_ring(size))]


def _coalesce_settings(dev: Device, profile: CaptureProfile) -> list[Setting]:
    co = dev.coalesce()
    if co is None:
        why = "the driver has no interrupt coalescing parameters"
        return [Setting("adaptive-rx", False, None, why), Setting("rx-usecs", profile.rx_usecs, None, why)]
    usecs = profile.rx_usecs
    known = ethtool_bin.coalesce_supported(dev.ifname)
    out: list[Setting] = []
    for name, wanted, found in (("adaptive-rx", False, bool(co["adaptive_rx"])),
                                ("rx-usecs", usecs, co["rx_usecs"])):
        if known is not None and name not in known:
            # The ioctl reads an unsupported parameter as 0: only "n/a" in ethtool -c tells.
            out.append(Setting(name, wanted, None, f"the driver has no {name} parameter"))
        else:
            out.append(Setting(name, wanted, found, apply=lambda: dev.set_coalesce(False, usecs)))
    return out


FLOW_TYPES = ("tcp4", "udp4", "tcp6", "udp6")
FLOW_FIELDS = "sdfn"  # IP source, IP destination, source port, destination port


def _rss_settings(dev: Device, profile: CaptureProfile) -> list[Setting]:
    out: list[Setting] = []
    if profile.rss_equal:
        rss = ethtool_bin.rss_table(dev.ifname)
        if rss is None:
            out.append(Setting("rss-indirection", "equal", None, "the driver has no RSS indirection table"))
        else:
            rings = rss.rings
            out.append(Setting("rss-indirection", f"equal over {rings} queues",
                               f"equal over {rings} queues" if rss.equal else "uneven",
                               apply=_raising(lambda: ethtool_bin.set_rss_equal(dev.ifname, rings))))
    if profile.flow_hash_ports:
        found = {flow: ethtool_bin.flow_hash(dev.ifname, flow) for flow in FLOW_TYPES}
        if all(v is None for v in found.values()):
            out.append(Setting("flow-hash", FLOW_FIELDS, None, "the driver has no flow hashing options"))
        for flow, fields in found.items():
            if fields is not None:
                out.append(Setting(f"flow-hash-{flow}", FLOW_FIELDS, fields, apply=_raising(
                    _flow_hash_setter(dev.ifname, flow))))
    return out


def _flow_hash_setter(ifname: str, flow: str) -> Callable[[], str | None]:
    return lambda: ethtool_bin.set_flow_hash(ifname, flow, FLOW_FIELDS)


def _raising(setter: Callable[[], str | None]) -> Callable[[], None]:
    """An ethtool-binary setter (returns its error line) as an apply that raises it."""
    def apply() -> None:
        err = setter()
        if err is not None:
            raise FeatureRefused(err)
    return apply


def _timestamp_settings(dev: Device, profile: CaptureProfile) -> list[Setting]:
    if not profile.hw_timestamps:
        return []
    info = ethtool_bin.timestamp_info(dev.ifname)
    if info is None:
        return [Setting("hw-timestamps", "all", None, "timestamping capabilities unknown (ethtool -T)")]
    if not info.hw_rx_all:
        why = ("hardware receive timestamps only for PTP packets" if info.rx_filters
               else "no hardware receive timestamps")
        return [Setting("hw-timestamps", "all", None, why)]
    try:
        current = hwtstamp.get_rx_filter(dev.ifname)
    except OSError as exc:
        return [Setting("hw-timestamps", "all", None, f"SIOCGHWTSTAMP: {exc.strerror}")]
    return [Setting("hw-timestamps", "all", current,
                    apply=lambda: hwtstamp.set_rx_filter_all(dev.ifname))]


def capture_cpus_for(irq_cpus: list[int], online: tuple[int, ...]) -> list[int]:
    offline = [c for c in irq_cpus if c not in online]
    if offline:
        raise SluiceError(f"nic.irq_cpus: CPU {offline[0]} is not online "
                          f"(online: {','.join(map(str, online))})")
    return list(dict.fromkeys(irq_cpus))


def _irq_settings(dev: Device, profile: CaptureProfile,
                  proc: Path) -> tuple[list[Setting], list[int], list[int]]:
    if profile.irq_cpus is None:  # leave the IRQs where they are; workers are not pinned
        return [], [], []
    table = irq.read_interrupts(proc)
    cpus = capture_cpus_for(profile.irq_cpus, table.cpus)
    bus_info = ethtool_bin.driver_info(dev.ifname).get("bus-info") or None
    queues = irq.rx_queue_irqs(table, dev.ifname, bus_info, irq.virtio_devices(bus_info))
    if not queues:
        why = "no RX queue interrupts in /proc/interrupts (a virtual interface)"
        return [Setting("irq-affinity", cpus, None, why)], cpus, list(cpus)
    plan = irq.plan_affinity(queues, cpus)
    out: list[Setting] = []
    for q in queues:
        cpu = plan[q.irq]
        out.append(Setting(f"rx-queue-{q.queue}-irq", [cpu], irq.read_affinity(q.irq, proc),
                           apply=_irq_applier(q.irq, cpu, proc)))
    return out, cpus, irq.worker_cpus(plan, cpus)


def _irq_applier(irq_number: int, cpu: int, proc: Path) -> Callable[[], None]:
    return lambda: irq.write_affinity(irq_number, cpu, proc)
