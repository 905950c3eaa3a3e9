"""The capture profile: what a capture interface should look like (docs/nic.md explains why).

The profile is plain data; `tune` makes an interface match it and `check` reports where it does
not. `sluice nic tune|check --config` builds one from the config with `profile_from_mapping`; the
supervisor's NIC watchdog builds its own from the `[nic]` section (appliance/watchdogs/nic.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from appliance.errors import SluiceError

# Kernel feature names (as `ethtool -k` prints them) that change what is captured: receive
# offloads merge frames (GRO/LRO) or strip VLAN tags; transmit segmentation offloads make a
# locally sent super-frame look like one giant packet; rx-vlan-filter drops VLANs nobody asked
# for; rx-checksum hides bad checksums (the driver drops or "fixes" them before we see them).
FEATURES_OFF: tuple[str, ...] = (
    "rx-gro",
    "rx-lro",
    "rx-gro-hw",
    "rx-gro-list",
    "rx-udp-gro-forwarding",
    "tx-tcp-segmentation",
    "tx-tcp6-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
    "tx-tcp-accecn-segmentation",  # new in 6.18; part of ethtool's "tso" group
    "tx-generic-segmentation",
    "tx-udp-segmentation",
    "tx-udp-fragmentation",
    "rx-vlan-hw-parse",
    "rx-vlan-stag-hw-parse",
    "rx-vlan-filter",
    "rx-vlan-stag-filter",
    "rx-checksum",
)

# Features a capture port wants on where the driver has them: rx-all hands over frames with a
# bad FCS and other errored frames instead of dropping them silently in the NIC.
FEATURES_ON: tuple[str, ...] = ("rx-all",)

# The short names `ethtool -K` accepts for the old-style offloads. Settings are named and reported
# by their kernel names everywhere (`nic show`, `check`, `tune`, the drift metric's label; `ethtool
# -K` takes those too); the short and long names are accepted wherever a feature is named.
FEATURE_ALIASES: dict[str, str] = {
    "rx-gro": "gro",
    "rx-lro": "lro",
    "tx-tcp-segmentation": "tso",
    "tx-generic-segmentation": "gso",
    "tx-udp-fragmentation": "ufo",
    "rx-checksum": "rx",
    "rx-vlan-hw-parse": "rxvlan",
    "rx-all": "rx-all",
}


@dataclass
class CaptureProfile:
    """How a capture interface is tuned. Every default is the safe choice for a monitor port."""

    name: str = "capture"
    # Fixed interrupt moderation (adaptive off): a bounded, constant delay between a frame's
    # arrival and its software timestamp, instead of one that changes with the load.
    rx_usecs: int = 50
    # None keeps the MTU as it is; a number sets it (jumbo frames on the monitored network).
    mtu: int | None = None
    # Hardware receive timestamps of every frame, where the NIC can stamp all frames.
    hw_timestamps: bool = True
    # CPUs that serve the RX queues' interrupts and run the capture workers; None leaves the
    # IRQ affinity as it is (as `irq_cpus = []` in sluice.toml does).
    irq_cpus: list[int] | None = None
    features_off: tuple[str, ...] = FEATURES_OFF
    features_on: tuple[str, ...] = FEATURES_ON
    rings_max: bool = True
    # RSS: the indirection table spread evenly over all RX queues, and TCP/UDP over IPv4/IPv6
    # hashed on addresses and ports, so flows (not just host pairs) spread over the queues.
    rss_equal: bool = True
    flow_hash_ports: bool = True
    promiscuous: bool = True
    # The box must never talk out of its monitor port: no ARP, no IPv6 (no RS, DAD, MLD).
    arp_off: bool = True
    ipv6_off: bool = True
    admin_up: bool = True


PROFILES: dict[str, CaptureProfile] = {"capture": CaptureProfile()}


def profile_by_name(name: str) -> CaptureProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise SluiceError(f"unknown NIC profile {name!r} (known: {known})") from None


_PROFILE_KEYS = {f.name for f in fields(CaptureProfile)} - {"name"}
# Keys of sluice.toml's [nic] table that steer the supervisor, not the interface.
SUPERVISOR_KEYS = frozenset({"tune", "reapply_on_drift", "check_interval"})


def profile_from_mapping(values: Mapping[str, object], base: str = "capture") -> CaptureProfile:
    """A profile from a config table: the validated `[nic]` section of sluice.toml can be passed
    whole (mtu 0 and irq_cpus [] mean "leave as is"); unknown keys are errors."""
    profile = profile_by_name(base)
    kwargs: dict[str, object] = {f.name: getattr(profile, f.name) for f in fields(CaptureProfile)}
    for key, value in values.items():
        if key in SUPERVISOR_KEYS:
            continue
        if key not in _PROFILE_KEYS:
            raise SluiceError(f"nic: unknown key {key!r} (allowed: {', '.join(sorted(_PROFILE_KEYS))})")
        if key in ("mtu", "irq_cpus") and not value:
            value = None
        if key in ("features_off", "features_on"):
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise SluiceError(f"nic.{key} must be a list of feature names, not {value!r}")
            value = tuple(value)
        kwargs[key] = value
    result = CaptureProfile(**kwargs)  # type: ignore[arg-type]
    validate_profile(result)
    return result


def validate_profile(profile: CaptureProfile) -> None:
    if isinstance(profile.rx_usecs, bool) or not isinstance(profile.rx_usecs, int) \
            or not 0 <= profile.rx_usecs <= 100_000:
        raise SluiceError(f"nic.rx_usecs must be an integer 0..100000, not {profile.rx_usecs!r}")
    if profile.mtu is not None and (isinstance(profile.mtu, bool) or not isinstance(profile.mtu, int)
                                    or not 68 <= profile.mtu <= 65535):
        raise SluiceError(f"nic.mtu must be an integer 68..65535, not {profile.mtu!r}")
    if profile.irq_cpus is not None:
        if not isinstance(profile.irq_cpus, list) or not profile.irq_cpus or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in profile.irq_cpus):
            raise SluiceError(f"nic.irq_cpus must be a non-empty list of CPU numbers, not "
                              f"{profile.irq_cpus!r}")
    both = set(profile.features_off) & set(profile.features_on)
    if both:
        raise SluiceError(f"nic: feature {sorted(both)[0]} is wanted both off and on")
    for key in ("hw_timestamps", "rings_max", "rss_equal", "flow_hash_ports", "promiscuous", "arp_off",
                "ipv6_off", "admin_up"):
        if not isinstance(getattr(profile, key), bool):
            raise SluiceError(f"nic.{key} must be true or false, not {getattr(profile, key)!r}")


# The long names `ethtool -k` prints for the old-style offloads (ethtool's off_flag_def table):
# accepted wherever a feature is named, so an operator can paste what ethtool shows.
ETHTOOL_LONG_NAMES: dict[str, str] = {
    "rx-checksumming": "rx-checksum",
    "tcp-segmentation-offload": "tx-tcp-segmentation",
    "generic-segmentation-offload": "tx-generic-segmentation",
    "generic-receive-offload": "rx-gro",
    "large-receive-offload": "rx-lro",
    "rx-vlan-offload": "rx-vlan-hw-parse",
    "udp-fragmentation-offload": "tx-udp-fragmentation",
    "ntuple-filters": "rx-ntuple-filter",
    "receive-hashing": "rx-hashing",
}


def feature_name(name: str) -> str:
    """The kernel's name for a feature given by its kernel name, ethtool's short alias ("gro")
    or ethtool's long name ("generic-receive-offload")."""
    for kernel_name, alias in FEATURE_ALIASES.items():
        if name == alias:
            return kernel_name
    return ETHTOOL_LONG_NAMES.get(name, name)


__all__ = [
    "CaptureProfile", "ETHTOOL_LONG_NAMES", "FEATURES_OFF", "FEATURES_ON", "FEATURE_ALIASES", "PROFILES",
    "feature_name", "profile_by_name", "profile_from_mapping", "validate_profile",
]
