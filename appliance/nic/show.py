"""`sluice nic show`: everything about an interface that matters for capture, as one document.

The JSON form is a contract (schema 1, documented in docs/nic.md): keys are only ever added,
never renamed or removed, and a reading the driver does not support is null.
"""

from __future__ import annotations

from pathlib import Path

from appliance.nic import ethtool_bin, hwtstamp, irq
from appliance.nic.device import Device
from appliance.nic.profile import FEATURE_ALIASES

SCHEMA_VERSION = 1


def read_state(ifname: str, proc: Path = irq.PROC) -> dict[str, object]:
    """The interface as it is now, in the current network namespace (schema in docs/nic.md)."""
    with Device(ifname) as dev:
        link = dev.link()
        drv = ethtool_bin.driver_info(ifname)
        features = dev.features()
        state: dict[str, object] = {
            "schema": SCHEMA_VERSION,
            "interface": ifname,
            "driver": {
                "name": drv.get("driver") or link.kind,
                "version": drv.get("version") or None,
                "firmware": drv.get("firmware-version") or None,
                "bus_info": drv.get("bus-info") or None,
                "kind": link.kind,
            },
            "link": {
                "index": link.index,
                "address": link.address,
                "admin_up": link.admin_up,
                "operstate": link.operstate,
                "carrier": link.carrier,
                "speed_mbps": dev.speed_mbps(),
                "mtu": link.mtu,
                "max_mtu": link.max_mtu,
                "promisc": link.promisc,
                "arp": not link.noarp,
                "ipv6_disabled": dev.ipv6_disabled(),
            },
            "features": {name: {"on": f.on, "fixed": f.fixed} for name, f in sorted(features.items())},
            "feature_aliases": {alias: name for name, alias in FEATURE_ALIASES.items()
                                if name in features and alias != name},
            "rings": dev.rings(),
            "channels": dev.channels(),
            "coalesce": _coalesce(dev),
            "rx_queue_irqs": _queue_irqs(ifname, drv.get("bus-info") or None, proc),
            "timestamping": _timestamping(ifname),
        }
    return state


def _coalesce(dev: Device) -> dict[str, object] | None:
    values: dict[str, object] | None = dict(dev.coalesce() or {}) or None
    if values is not None:
        known = ethtool_bin.coalesce_supported(dev.ifname)
        values["supported"] = sorted(known) if known is not None else None
    return values


def _queue_irqs(ifname: str, bus_info: str | None, proc: Path) -> list[dict[str, object]]:
    table = irq.read_interrupts(proc)
    out: list[dict[str, object]] = []
    for q in irq.rx_queue_irqs(table, ifname, bus_info, irq.virtio_devices(bus_info)):
        try:
            cpus: list[int] | None = irq.read_affinity(q.irq, proc)
        except OSError:
            cpus = None
        out.append({"queue": q.queue, "irq": q.irq, "name": q.name, "cpus": cpus})
    return out


def _timestamping(ifname: str) -> dict[str, object] | None:
    info = ethtool_bin.timestamp_info(ifname)
    if info is None:
        return None
    try:
        rx_filter: str | None = hwtstamp.get_rx_filter(ifname)
    except OSError:
        rx_filter = None
    return {
        "capabilities": info.capabilities,
        "phc_index": info.phc_index,
        "hw_tx_types": info.tx_types,
        "hw_rx_filters": info.rx_filters,
        "hw_rx_filter": rx_filter,
    }


def _onoff(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def format_state(state: dict[str, object]) -> str:
    """The human form of read_state: one fact per line, the same facts as the JSON."""
    drv = state["driver"]
    link = state["link"]
    assert isinstance(drv, dict) and isinstance(link, dict)
    lines = [
        f"interface     {state['interface']}",
        f"driver        {drv['name'] or 'unknown'}"
        + (f" {drv['version']}" if drv["version"] else "")
        + (f" (bus {drv['bus_info']})" if drv["bus_info"] else ""),
        f"link          admin {'up' if link['admin_up'] else 'down'}, oper {link['operstate']}, "
        f"carrier {_onoff(link['carrier'])}, speed "
        + (f"{link['speed_mbps']} Mb/s" if link["speed_mbps"] else "unknown"),
        f"mtu           {link['mtu']} (max {link['max_mtu']})",
        f"promisc       {_onoff(link['promisc'])}",
        f"arp           {_onoff(link['arp'])}",
        f"ipv6          {'n/a' if link['ipv6_disabled'] is None else _onoff(not link['ipv6_disabled'])}",
    ]
    rings = state["rings"]
    lines.append("rings         " + (f"rx {rings['rx']}/{rings['rx_max']}, tx {rings['tx']}/{rings['tx_max']}"
                                     if isinstance(rings, dict) else "not supported"))
    ch = state["channels"]
    lines.append("channels      " + (
        f"rx {ch['rx_count']}/{ch['max_rx']}, tx {ch['tx_count']}/{ch['max_tx']}, "
        f"combined {ch['combined_count']}/{ch['max_combined']}" if isinstance(ch, dict) else "not supported"))
    co = state["coalesce"]
    if isinstance(co, dict):
        has = co["supported"]

        def param(name: str, value: object) -> str:
            return _onoff(value) if has is None or name in has else "n/a"
        lines.append(f"coalesce      adaptive-rx {param('adaptive-rx', bool(co['adaptive_rx']))}, "
                     f"rx-usecs {param('rx-usecs', co['rx_usecs'])}, "
                     f"rx-frames {param('rx-frames', co['rx_frames'])}")
    else:
        lines.append("coalesce      not supported")
    ts = state["timestamping"]
    if isinstance(ts, dict):
        lines.append(f"timestamping  {', '.join(ts['capabilities']) or 'none'}; hw rx filters: "
                     f"{', '.join(ts['hw_rx_filters']) or 'none'}; in force: {ts['hw_rx_filter'] or 'n/a'}")
    else:
        lines.append("timestamping  unknown (ethtool -T)")
    queues = state["rx_queue_irqs"]
    assert isinstance(queues, list)
    if queues:
        for q in queues:
            cpus = ",".join(map(str, q["cpus"])) if q["cpus"] is not None else "?"
            lines.append(f"rx queue {q['queue']:<4} irq {q['irq']} ({q['name']}) on CPUs {cpus}")
    else:
        lines.append("rx queue irqs none (a virtual interface)")
    lines.append("features:")
    feats = state["features"]
    assert isinstance(feats, dict)
    for name, f in feats.items():
        lines.append(f"  {name}: {_onoff(f['on'])}{' [fixed]' if f['fixed'] else ''}")
    return "\n".join(lines)
