"""`sluice selftest`: the box measures its own lossless capture ceiling (docs/capacity.md)."""
