"""Benchmarks: Sluice and its peers side by side from the same run."""
