"""NIC tuning for capture interfaces: `sluice nic show|tune|check` (see docs/nic.md)."""
