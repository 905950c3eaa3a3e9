"""IRQ spreading against /proc/interrupts: a real 16-CPU dump with an 8-queue Intel port, a real
virtio-net guest, and the hand-written (synthetic) ixgbe + mlx5 8-CPU layout of INTERRUPTS_FIXTURE."""

from __future__ import annotations

import pytest

from appliance.nic import irq
from tests.nic.conftest import INTERRUPTS_FIXTURE


@pytest.fixture
def table() -> irq.InterruptTable:
    return irq.parse_interrupts(INTERRUPTS_FIXTURE.read_text())


def test_parse_reads_cpus_and_numbered_lines_only(table: irq.InterruptTable) -> None:
    assert table.cpus == tuple(range(8))
    by_irq = {line.irq: line for line in table.lines}
    assert "NMI" not in {line.name for line in table.lines}
    assert by_irq[0].name == "timer"
    assert by_irq[30].name == "ahci[0000:00:17.0]"
    # A shared IRQ keeps all its action names.
    assert by_irq[26].name == "PCIe PME, aerdrv"
    assert by_irq[90].name == "eth2-TxRx-0" and len(by_irq[90].counts) == 8
    # Counts are per CPU: queue 3's interrupts land mostly on CPU 3 in this capture.
    assert max(range(8), key=lambda c: by_irq[93].counts[c]) == 3


def test_ixgbe_rx_queues_exclude_link_vector_and_other_port(table: irq.InterruptTable) -> None:
    queues = irq.rx_queue_irqs(table, "eth2")
    assert [(q.queue, q.irq) for q in queues] == [(i, 90 + i) for i in range(8)]
    assert 98 not in {q.irq for q in queues}  # "eth2": the link/other vector, not a queue
    assert [q.irq for q in irq.rx_queue_irqs(table, "eth3")] == list(range(99, 107))
    assert irq.rx_queue_irqs(table, "eth") == []


def test_mlx5_queues_found_by_pci_address(table: irq.InterruptTable) -> None:
    assert irq.rx_queue_irqs(table, "ens2f0np0") == []  # mlx5 does not name vectors by netdev
    queues = irq.rx_queue_irqs(table, "ens2f0np0", bus_info="0000:5e:00.0")
    assert [(q.queue, q.irq) for q in queues] == [(i, 109 + i) for i in range(8)]
    assert "mlx5_async0@pci:0000:5e:00.0" not in {q.name for q in queues}


def test_plan_spreads_queues_round_robin_over_capture_cpus(table: irq.InterruptTable) -> None:
    queues = irq.rx_queue_irqs(table, "eth2")
    plan = irq.plan_affinity(queues, [2, 3, 4, 5])
    assert plan == {90: 2, 91: 3, 92: 4, 93: 5, 94: 2, 95: 3, 96: 4, 97: 5}
    assert irq.worker_cpus(plan, [2, 3, 4, 5]) == [2, 3, 4, 5]


def test_fewer_queues_than_cpus_gives_workers_only_queue_cpus(table: irq.InterruptTable) -> None:
    queues = irq.rx_queue_irqs(table, "eth2")[:3]
    plan = irq.plan_affinity(queues, [7, 1, 2, 3, 4])
    assert plan == {90: 7, 91: 1, 92: 2}
    # Workers go where the frames arrive, in the operator's order.
    assert irq.worker_cpus(plan, [7, 1, 2, 3, 4]) == [7, 1, 2]


def test_default_capture_cpus_leave_cpu0_to_the_system(table: irq.InterruptTable) -> None:
    cpus = irq.default_capture_cpus(table.cpus)
    assert cpus == [1, 2, 3, 4, 5, 6, 7]
    plan = irq.plan_affinity(irq.rx_queue_irqs(table, "eth2"), cpus)
    assert plan[90] == 1 and plan[96] == 7 and plan[97] == 1  # 8 queues on 7 CPUs wrap around
    assert irq.default_capture_cpus((0,)) == [0]


def test_no_queues_no_pinning() -> None:
    assert irq.worker_cpus({}, [1, 2]) == [1, 2]
    with pytest.raises(ValueError):
        irq.plan_affinity([], [])


def test_cpu_list_format() -> None:
    assert irq.parse_cpu_list("0-2,5\n") == [0, 1, 2, 5]
    assert irq.parse_cpu_list("3") == [3]


def test_this_machines_interrupts_parse() -> None:
    table = irq.read_interrupts()
    assert table.cpus and all(len(line.counts) == len(table.cpus) for line in table.lines)


def test_virtio_net_queue_found_through_its_pci_device(tmp_path) -> None:  # noqa: ANN001
    real = irq.parse_interrupts((INTERRUPTS_FIXTURE.parent / "virtio-net-2cpu-6.18.txt").read_text())
    assert real.cpus == (0, 1)
    by_irq = {line.irq: line.name for line in real.lines}
    assert by_irq[38] == "virtio2-input.0" and by_irq[36] == "virtio1-req.0"  # 6.18 "PCI-MSIX-..." chips
    # virtio_net's vectors carry the virtio device's name; sysfs links it to the PCI address
    # that `ethtool -i` gives as bus-info.
    (tmp_path / "bus" / "pci" / "devices" / "0000:00:03.0" / "virtio2").mkdir(parents=True)
    devices = irq.virtio_devices("0000:00:03.0", sys=tmp_path)
    assert devices == ["virtio2"]
    queues = irq.rx_queue_irqs(real, "ens3", "0000:00:03.0", devices)
    assert [(q.queue, q.irq) for q in queues] == [(0, 38)]  # not output.0, not config
    assert irq.virtio_devices("0000:00:09.0", sys=tmp_path) == [] and irq.virtio_devices(None) == []


def test_ena_queue_names() -> None:
    # ena_netdev.c names its vectors "%s-Tx-Rx-%d" after the netdev, "ena-mgmnt@pci:%s" after the device.
    table = irq.parse_interrupts(
        "           CPU0       CPU1       \n"
        " 27:         33          0  PCI-MSIX-0000:00:05.0   0-edge      ena-mgmnt@pci:0000:00:05.0\n"
        " 28:     591031          0  PCI-MSIX-0000:00:05.0   1-edge      ens5-Tx-Rx-0\n"
        " 29:          0     584770  PCI-MSIX-0000:00:05.0   2-edge      ens5-Tx-Rx-1\n")
    assert [(q.queue, q.irq) for q in irq.rx_queue_irqs(table, "ens5", "0000:00:05.0")] == [(0, 28), (1, 29)]


# A real dump (tests/fixtures/interrupts/README.md): Linux 2.6.38, 16 CPUs, chip and flow in one
# token ("PCI-MSI-edge"), eth0's link vector on IRQ 128 and its queues eth0-TxRx-0..7 on 129..136.
REAL_16CPU = INTERRUPTS_FIXTURE.parent / "intel-txrx-8queue-16cpu-2.6.38.txt"


@pytest.fixture
def real16() -> irq.InterruptTable:
    return irq.parse_interrupts(REAL_16CPU.read_text())


def test_real_16cpu_dump_parses(real16: irq.InterruptTable) -> None:
    assert real16.cpus == tuple(range(16))
    assert len(real16.lines) == 34  # every numbered row; NMI ... MIS are not device lines
    assert all(len(line.counts) == 16 for line in real16.lines)
    by_irq = {line.irq: line for line in real16.lines}
    assert by_irq[0].name == "timer" and by_irq[0].counts[0] == 444821636
    assert by_irq[3].name == ""  # "IO-APIC-edge" with no action
    assert by_irq[18].name == "ehci_hcd:usb1, uhci_hcd:usb7"
    assert by_irq[128].name == "eth0" and by_irq[127].name == "ahci"
    assert by_irq[127].counts[5] == 24787742
    # Each queue's interrupts were served by one CPU: the columns are read in the right order.
    busiest = {n: max(range(16), key=lambda c: by_irq[n].counts[c]) for n in range(129, 137)}
    assert busiest == {129: 11, 130: 15, 131: 14, 132: 9, 133: 12, 134: 13, 135: 8, 136: 10}
    assert by_irq[136].counts[9] == 25 and by_irq[136].counts[10] == 7832075


def test_real_16cpu_eth0_queues(real16: irq.InterruptTable) -> None:
    queues = irq.rx_queue_irqs(real16, "eth0")
    assert [(q.queue, q.irq, q.name) for q in queues] == [(i, 129 + i, f"eth0-TxRx-{i}") for i in range(8)]
    assert 128 not in {q.irq for q in queues}  # the link vector "eth0" is not a queue
    assert irq.rx_queue_irqs(real16, "eth1") == [] and irq.rx_queue_irqs(real16, "eth") == []
    assert irq.rx_queue_irqs(real16, "eth0", bus_info="0000:01:00.0") == queues  # no mlx5 here


def test_real_16cpu_spreading(real16: irq.InterruptTable) -> None:
    queues = irq.rx_queue_irqs(real16, "eth0")
    # Default: CPUs 1-15; 8 queues take the first 8 of them, one each, none wraps.
    cpus = irq.default_capture_cpus(real16.cpus)
    assert cpus == list(range(1, 16))
    plan = irq.plan_affinity(queues, cpus)
    assert plan == {129 + i: 1 + i for i in range(8)}
    assert irq.worker_cpus(plan, cpus) == list(range(1, 9))
    # Four capture CPUs chosen by the operator: two queues each, in queue order.
    plan = irq.plan_affinity(queues, [8, 9, 10, 11])
    assert plan == {129: 8, 130: 9, 131: 10, 132: 11, 133: 8, 134: 9, 135: 10, 136: 11}
    assert irq.worker_cpus(plan, [8, 9, 10, 11]) == [8, 9, 10, 11]
