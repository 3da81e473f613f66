"""Each run's S for `flipbench runs`, remembered in the journal instead of recomputed per listing.

Recomputing S means reading a run's samples and analysing them (rates, intervals, the kind's
metrics): tens of milliseconds a run, seconds for a journal of a hundred runs, and it pulled
numpy and the statistics into a command that only lists. The journal's `summaries` table
(`journal_summaries`) keeps the last value under a key of everything it depends on; only runs
whose key changed (new samples, a new status or mode, another flipbench version) are
recomputed, and their new values are remembered for the next listing.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.store import Journal, RunRow, check_writable


@dataclass(frozen=True)
class RunSummary:
    """What `runs` shows of a run's analysis: S (NaN when the run cannot be read back) and the
    share of its grid S stands on (None when unknown)."""

    s: float
    grid_share: float | None

    def to_json(self) -> dict[str, Any]:
        return {"S": None if math.isnan(self.s) else self.s, "grid_share": self.grid_share}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RunSummary | None:
        s, share = value.get("S"), value.get("grid_share")
        if not (s is None or isinstance(s, int | float)):
            return None
        if not (share is None or isinstance(share, int | float)):
            return None
        return cls(math.nan if s is None else float(s), None if share is None else float(share))


def _compute(journal: Journal, run_id: str) -> RunSummary:
    """S read back from the samples. A run that cannot be (an unusable stored id, a definition
    written elsewhere) is still listed, without S, so that it can be seen and deleted."""
    from flipbench.results import compute_results  # numpy and the statistics: only on a miss

    try:
        results = compute_results(journal, run_id)
    except (FlipbenchError, ValueError, KeyError, TypeError):
        return RunSummary(math.nan, None)
    return RunSummary(results.s, results.grid_coverage.grid_share)


def run_summaries(db: Path) -> list[tuple[RunRow, RunSummary]]:
    """Every run (oldest first) with its summary, recomputing only those not remembered."""
    fresh: dict[str, tuple[str, dict[str, Any]]] = {}
    listed = []
    with Journal(db, create=False) as journal:
        keys = journal.summary_keys()
        cached = journal.cached_summaries(keys)
        for run in journal.list_runs():
            remembered = cached.get(run.run_id)
            summary = None if remembered is None else RunSummary.from_json(remembered)
            if summary is None:
                summary = _compute(journal, run.run_id)
                if run.run_id in keys:
                    fresh[run.run_id] = (keys[run.run_id], summary.to_json())
            listed.append((run, summary))
        read_only = journal.read_only
    if fresh and not read_only:
        _remember(db, fresh)
    return listed


def _remember(db: Path, fresh: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Store new summaries. A cache that cannot be written (the journal became read-only, or
    stayed busy past the timeout) costs only a recomputation next time, so it is not an error."""
    try:
        check_writable(db)
        with Journal(db) as journal:
            journal.store_summaries(fresh)
    except (FlipbenchError, sqlite3.Error, OSError):
        return
