"""Watchdogs: one concern each (writer, time, disk, RAID, SMART, NIC); each returns readings
that appliance.metrics exports and appliance.status prints."""
