"""Sluice: a packet-capture appliance (supervisor, NIC tuning, lab, pipeline)."""

__version__ = "0.1.0"
