"""The lab: a switched network with a SPAN port, built in network namespaces it owns."""
