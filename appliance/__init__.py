"""Sluice: a packet-capture appliance (supervisor, watchdogs, NIC tuning, lab)."""

__version__ = "0.1.0"

# Here, not in appliance.config, so that light commands (`sluice extract`) can name it in their
# --help without importing the config module.
DEFAULT_CONFIG_PATH = "/etc/sluice/sluice.toml"
