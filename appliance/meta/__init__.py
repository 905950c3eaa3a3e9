"""Metadata beside the packets: DNS zones, DHCP leases, device configs, maintenance windows."""
