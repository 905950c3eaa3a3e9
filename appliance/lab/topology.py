"""The lab's topology: hosts on a Linux bridge whose ports are mirrored to a SPAN port.

    sluice-lab-ID-h1  eth0 --- p1 \\
    sluice-lab-ID-h2  eth0 --- p2 -- br0   (namespace sluice-lab-ID-sw)
    sluice-lab-ID-h3  eth0 --- p3 /
                                span --- span0  (namespace sluice-lab-ID-cap: the capture side)

p1 and p2 are mirrored in both directions (tc clsact, u32 match-all, mirred egress mirror), as a
switch's SPAN session mirrors a port's rx and tx. A frame from h1 to h2 therefore reaches span0
twice (p1 ingress and p2 egress): the duplicates a real SPAN port produces. h3's port is not
mirrored, so its traffic with other unmirrored ports is invisible, as on a real switch.

Every name lives under the lab id, and every interface is created inside the lab's namespaces,
so several labs run side by side and the machine's own interfaces are never touched. A lab is
found again by its namespaces alone, so `down` also cleans up after a lab whose owner died.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.errors import SluiceError
from appliance.lab import netns

NS_PREFIX = "sluice-lab-"
STATE_DIR = Path("/run/sluice/lab")
ID_PATTERN = re.compile(r"^[a-z0-9]{1,12}$")
MAX_LABS = 16  # one /28 of 198.51.100.0/24 per lab
HOST_NAMES = ("h1", "h2", "h3")
MIRRORED_PORTS = ("p1", "p2")
CAPTURE_IF = "span0"
DNS_NAME = "www.lab.example"


@dataclass
class Host:
    name: str
    ns: str
    ifname: str
    ipv4: str
    ipv6: str
    mac: str = ""


@dataclass
class Lab:
    id: str
    index: int
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def switch_ns(self) -> str:
        return ns_name(self.id, "sw")

    @property
    def capture_ns(self) -> str:
        return ns_name(self.id, "cap")

    @property
    def capture_if(self) -> str:
        return CAPTURE_IF

    @property
    def namespaces(self) -> list[str]:
        return [self.switch_ns, self.capture_ns, *(h.ns for h in self.hosts.values())]

    def argv(self, ns: str, argv: Sequence[str]) -> list[str]:
        return netns.exec_argv(ns, argv)

    def exec(self, ns: str, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return netns.run_in(ns, argv, **kwargs)

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise SluiceError(f"lab {self.id} has no host {name!r} (hosts: {', '.join(self.hosts)})") from None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "index": self.index, "capture_ns": self.capture_ns,
            "capture_if": self.capture_if, "switch_ns": self.switch_ns,
            "hosts": {name: asdict(h) for name, h in self.hosts.items()},
        }


def ns_name(lab_id: str, role: str) -> str:
    return f"{NS_PREFIX}{lab_id}-{role}"


def host_addresses(index: int, host_number: int) -> tuple[str, str]:
    """Documentation-range addresses: 198.51.100.(16*index + n)/28 and 2001:db8:51:index::n/64."""
    ipv6 = ipaddress.IPv6Address(f"2001:db8:51:{index:x}::{host_number:x}")
    return f"198.51.100.{16 * index + host_number}", str(ipv6)


def existing_lab_ids() -> list[str]:
    ids = {name[len(NS_PREFIX):].rsplit("-", 1)[0] for name in netns.list_namespaces()
           if name.startswith(NS_PREFIX)}
    if STATE_DIR.is_dir():
        ids |= {p.stem for p in STATE_DIR.glob("*.json")}
    return sorted(ids)


def _state_path(lab_id: str) -> Path:
    return STATE_DIR / f"{lab_id}.json"


def load(lab_id: str) -> Lab:
    """The lab with this id, as `up` recorded it."""
    path = _state_path(lab_id)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SluiceError(f"lab {lab_id} does not exist (no {path}); `sluice lab status` lists labs") from None
    hosts = {name: Host(**h) for name, h in data["hosts"].items()}
    return Lab(id=data["id"], index=data["index"], hosts=hosts)


def _free_index() -> int:
    used: set[int] = set()
    for lab_id in existing_lab_ids():
        try:
            used.add(load(lab_id).index)
        except (SluiceError, KeyError, ValueError):
            continue
    for index in range(MAX_LABS):
        if index not in used:
            return index
    raise SluiceError(f"all {MAX_LABS} lab slots are in use: `sluice lab down ID` one of {existing_lab_ids()}")


def _sysctl(ns: str, key: str, value: str) -> None:
    netns.run_in(ns, ["sysctl", "-qw", f"{key}={value}"])


def _offloads_off(ns: str, ifname: str) -> None:
    # A SPAN port delivers wire-sized frames; veth would otherwise pass 64 KiB GSO super-frames
    # through the bridge and the mirror, which no real switch port ever shows.
    netns.run_in(ns, ["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"], check=False)


def _mirror(sw_ns: str, port: str, span: str) -> None:
    netns.run_in(sw_ns, ["tc", "qdisc", "add", "dev", port, "clsact"])
    for direction in ("ingress", "egress"):
        netns.run_in(sw_ns, ["tc", "filter", "add", "dev", port, direction, "protocol", "all", "u32",
                             "match", "u32", "0", "0", "action", "mirred", "egress", "mirror",
                             "dev", span])


def _mac(ns: str, ifname: str) -> str:
    proc = netns.ip("-n", ns, "-j", "link", "show", "dev", ifname)
    return str(json.loads(proc.stdout)[0]["address"])


def build(lab_id: str | None = None) -> Lab:
    """Create the namespaces, links, bridge and mirror. Raises SluiceError and leaves nothing."""
    netns.require_root("sluice lab up")
    lab_id = lab_id or secrets.token_hex(3)
    if not ID_PATTERN.match(lab_id):
        raise SluiceError(f"lab id {lab_id!r} is not allowed: 1-12 lowercase letters or digits")
    if lab_id in existing_lab_ids():
        raise SluiceError(f"lab {lab_id} already exists: `sluice lab down {lab_id}` first")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    index = _free_index()
    lab = Lab(id=lab_id, index=index)
    # Claim the index at once, so a lab started in parallel picks another.
    _state_path(lab_id).write_text(json.dumps(lab.to_json()))
    try:
        _build(lab)
    except BaseException:
        destroy(lab_id)
        raise
    _state_path(lab_id).write_text(json.dumps(lab.to_json(), indent=2))
    return lab


def _build(lab: Lab) -> None:
    sw = lab.switch_ns
    netns.add_namespace(sw)
    netns.ip("-n", sw, "link", "add", "br0", "type", "bridge")
    # A switch forwards at once: no STP listening delay, no multicast snooping surprises.
    netns.ip("-n", sw, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
    _sysctl(sw, "net.ipv6.conf.all.disable_ipv6", "1")
    _sysctl(sw, "net.ipv6.conf.default.disable_ipv6", "1")
    netns.ip("-n", sw, "link", "set", "br0", "up")

    for number, name in enumerate(HOST_NAMES, start=1):
        ns = ns_name(lab.id, name)
        netns.add_namespace(ns)
        port = f"p{number}"
        netns.add_veth(sw, port, ns, "eth0")
        netns.ip("-n", sw, "link", "set", port, "master", "br0")
        ipv4, ipv6 = host_addresses(lab.index, number)
        netns.ip("-n", ns, "addr", "add", f"{ipv4}/28", "dev", "eth0")
        netns.ip("-n", ns, "addr", "add", f"{ipv6}/64", "dev", "eth0", "nodad")
        _offloads_off(ns, "eth0")
        _offloads_off(sw, port)
        lab.hosts[name] = Host(name=name, ns=ns, ifname="eth0", ipv4=ipv4, ipv6=ipv6, mac=_mac(ns, "eth0"))

    cap = lab.capture_ns
    netns.add_namespace(cap)
    # The capture side must never talk: no IPv6 (router solicitations), no ARP.
    _sysctl(cap, "net.ipv6.conf.all.disable_ipv6", "1")
    _sysctl(cap, "net.ipv6.conf.default.disable_ipv6", "1")
    netns.add_veth(sw, "span", cap, CAPTURE_IF)
    netns.ip("-n", cap, "link", "set", CAPTURE_IF, "arp", "off")
    _offloads_off(sw, "span")
    _offloads_off(cap, CAPTURE_IF)
    for port in MIRRORED_PORTS:
        _mirror(sw, port, "span")


def destroy(lab_id: str) -> list[str]:
    """Remove every namespace (and so every process and link) of the lab. Returns what was removed."""
    removed = []
    for name in netns.list_namespaces():
        if name.startswith(f"{NS_PREFIX}{lab_id}-"):
            netns.delete_namespace(name)
            removed.append(name)
    state = _state_path(lab_id)
    if state.exists():
        state.unlink()
        removed.append(str(state))
    return removed


def is_up(lab_id: str) -> bool:
    return all(name in netns.list_namespaces() for name in load(lab_id).namespaces)


def env_lines(lab: Lab) -> list[str]:
    """Shell-style lines that tell a person (or a script) where the lab's parts are."""
    lines = [f"LAB_ID={lab.id}", f"CAPTURE_NS={lab.capture_ns}", f"CAPTURE_IF={lab.capture_if}"]
    for name, h in lab.hosts.items():
        lines.append(f"{name.upper()}_NS={h.ns} {name.upper()}_IPV4={h.ipv4} {name.upper()}_IPV6={h.ipv6}")
    return lines

