"""The catalog's ledger fed the way the supervisor feeds it: stats lines appended in chunks to
SPOOL/stats/<interface>-<day>.jsonl, a refresh after each chunk."""

from __future__ import annotations

from pathlib import Path

from appliance.gaps import ledger, store


def stored_runs(spool: Path, chunks: list[list[str]], start: float, end: float, journal: Path | None = None,
                name: str = "eth-2026-11-29.jsonl", now: float | None = None) -> list[ledger.Gap]:
    """Append each chunk of raw stats lines, refresh after each; the runs the catalog then holds."""
    stats = spool / "stats"
    stats.mkdir(parents=True, exist_ok=True)
    for chunk in chunks:
        with open(stats / name, "a", encoding="utf-8") as f:
            f.write("".join(chunk))
        assert store.refresh(spool, journal, now=now) >= 1  # the file changed: it is read
    assert store.refresh(spool, journal, now=now) == 0  # nothing new: nothing read
    return store.query(spool, start, end)
