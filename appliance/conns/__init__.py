"""sluice conns: every socket of a host with its process, and the join to captured flows."""
