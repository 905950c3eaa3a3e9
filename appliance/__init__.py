"""Sluice: a packet-capture appliance (supervisor, watchdogs, NIC tuning, lab)."""

__version__ = "0.1.0"
