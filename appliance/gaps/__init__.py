"""sluice gaps: the gap ledger (every second per interface whole or lossy, with the cause)."""
