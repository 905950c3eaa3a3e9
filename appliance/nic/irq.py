"""RX queue interrupts: find them in /proc/interrupts, spread them over the capture CPUs.

With RSS the NIC hashes each flow to one RX queue; each queue raises its own MSI-X interrupt,
and the CPU that serves that interrupt runs the softirq that hands the frame to AF_PACKET. So
pinning queue i's IRQ to capture CPU i (round robin) spreads the load, and the capture workers
belong on exactly those CPUs, where the frames already are in cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
SYS = Path("/sys")
_HWIRQ_OR_FLOW = re.compile(r"\d+(?:-[a-z]+)?|-[a-z]+|Level|Edge")


@dataclass(frozen=True)
class IrqLine:
    irq: int
    counts: tuple[int, ...]  # per CPU, in the order of `cpus` of the table
    name: str  # the action name: "eth2-TxRx-0", "mlx5_comp3@pci:0000:5e:00.0"


@dataclass(frozen=True)
class InterruptTable:
    cpus: tuple[int, ...]  # the online CPUs, as the header lists them
    lines: tuple[IrqLine, ...]


@dataclass(frozen=True)
class RxQueueIrq:
    queue: int
    irq: int
    name: str


def parse_interrupts(text: str) -> InterruptTable:
    """Parse /proc/interrupts: numbered IRQ lines only (NMI, LOC... are not device queues)."""
    rows = text.splitlines()
    if not rows:
        return InterruptTable(cpus=(), lines=())
    cpus = tuple(int(tok[3:]) for tok in rows[0].split() if tok.startswith("CPU"))
    lines: list[IrqLine] = []
    for row in rows[1:]:
        label, sep, rest = row.partition(":")
        if not sep or not label.strip().isdigit():
            continue
        tokens = rest.split()
        counts = tuple(int(t) for t in tokens[: len(cpus)] if t.isdigit())
        if len(counts) != len(cpus):
            continue
        # After the counts: the chip ("IR-PCI-MSI"), the hwirq and flow ("1048576-edge"; ARM
        # prints "27 Level"), then the action names (of a shared IRQ: joined by ", ").
        j = len(cpus) + 1
        while j < len(tokens) and _HWIRQ_OR_FLOW.fullmatch(tokens[j]):
            j += 1
        name = " ".join(tokens[j:])
        lines.append(IrqLine(irq=int(label), counts=counts, name=name))
    return InterruptTable(cpus=cpus, lines=tuple(lines))


def read_interrupts(proc: Path = PROC) -> InterruptTable:
    return parse_interrupts((proc / "interrupts").read_text())


def _queue_patterns(ifname: str, bus_info: str | None, virtio: list[str]) -> list[re.Pattern[str]]:
    name = re.escape(ifname)
    patterns = [
        # ixgbe/igb/igc/bnxt "eth2-TxRx-0", i40e/ice "i40e-eth2-TxRx-0", split vectors "eth2-rx-0",
        # bnx2x "eth2-fp-0", ena "eth0-Tx-Rx-0".
        re.compile(rf"^(?:[a-z0-9_]+-)?{name}-(?:TxRx|txrx|rx|RX|Rx|fp|rx-tx|Tx-Rx)-(\d+)$"),
    ]
    if bus_info:
        # mlx5 names completion vectors after the PCI device, not the netdev.
        patterns.append(re.compile(rf"^mlx5_comp(\d+)@pci:{re.escape(bus_info)}$"))
    for device in virtio:
        # virtio_net names them after its virtio device: "virtio2-input.0" (RX queue 0).
        patterns.append(re.compile(rf"^{re.escape(device)}-input\.(\d+)$"))
    return patterns


def virtio_devices(bus_info: str | None, sys: Path = SYS) -> list[str]:
    """The virtio devices ("virtio2") on a PCI device: virtio_net's IRQ names use these."""
    if not bus_info:
        return []
    try:
        return sorted(p.name for p in (sys / "bus" / "pci" / "devices" / bus_info).iterdir()
                      if p.name.startswith("virtio"))
    except OSError:
        return []


def rx_queue_irqs(table: InterruptTable, ifname: str, bus_info: str | None = None,
                  virtio: list[str] | None = None) -> list[RxQueueIrq]:
    """The IRQs that serve ifname's RX queues, by queue number; [] for a virtual interface."""
    found: list[RxQueueIrq] = []
    patterns = _queue_patterns(ifname, bus_info, virtio or [])
    for line in table.lines:
        for pattern in patterns:
            m = pattern.match(line.name)
            if m:
                found.append(RxQueueIrq(queue=int(m.group(1)), irq=line.irq, name=line.name))
                break
    return sorted(found, key=lambda q: q.queue)


def default_capture_cpus(online: tuple[int, ...] | list[int]) -> list[int]:
    """Every online CPU but CPU 0 (housekeeping, timers, the supervisor) when there are several."""
    cpus = sorted(online)
    return cpus[1:] if len(cpus) > 1 else cpus


def plan_affinity(queues: list[RxQueueIrq], capture_cpus: list[int]) -> dict[int, int]:
    """IRQ -> CPU: queue i goes to capture_cpus[i mod n], so queues spread evenly and in order."""
    if not capture_cpus:
        raise ValueError("no capture CPUs")
    return {q.irq: capture_cpus[i % len(capture_cpus)] for i, q in enumerate(queues)}


def worker_cpus(plan: dict[int, int], capture_cpus: list[int]) -> list[int]:
    """The CPUs to run capture workers on: those serving at least one RX queue, in the order
    of capture_cpus; all of capture_cpus when there are no queue IRQs (a virtual interface)."""
    used = set(plan.values())
    return [c for c in capture_cpus if c in used] if used else list(capture_cpus)


def parse_cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the smp_affinity_list format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def read_affinity(irq: int, proc: Path = PROC) -> list[int]:
    return parse_cpu_list((proc / "irq" / str(irq) / "smp_affinity_list").read_text())


def write_affinity(irq: int, cpu: int, proc: Path = PROC) -> None:
    """Pin one IRQ to one CPU. OSError (EIO) for kernel-managed IRQs, which cannot be moved."""
    (proc / "irq" / str(irq) / "smp_affinity_list").write_text(f"{cpu}\n")
