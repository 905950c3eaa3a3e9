"""sluice notes: timestamped notes in the capture journal."""
