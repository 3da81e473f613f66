"""The journal's `summaries` table: each run's S remembered, so that `runs` lists at once.

`flipbench runs` prints every run's S, and S is recomputed from a run's samples (rates,
intervals, the kind's analysis): ~30 ms a run, seconds for a journal of a hundred. So the last
value computed is kept here under a *key* that changes whenever anything S depends on can
have changed — the run's sample count and newest sample id (samples are only ever added, or
deleted with their run), its `updated_at` (mode, status, versions), its definition hash and
the flipbench version that computed it. A stale entry is never read: its key no longer matches.

The table is a cache, not data: it is created on every writable open (journals made before it
get it too), a read-only journal simply has none, and a cache that cannot be written (a
read-only file, a journal busy past the timeout) costs only the recomputation next time.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flipbench import __version__
from flipbench.journal_file import JournalFile, now


class SummaryTable(JournalFile):
    """Read and write the remembered per-run summaries of an open journal."""

    def summary_keys(self) -> dict[str, str]:
        """Every run's current key (what a remembered summary must have been computed for)."""
        counts = {
            row[0]: (row[1], row[2])
            for row in self._db.execute(
                "SELECT run_id, COUNT(*), MAX(id) FROM samples GROUP BY run_id"
            )
        }
        keys = {}
        for run_id, updated_at, definition_hash in self._db.execute(
            "SELECT run_id, updated_at, definition_hash FROM runs"
        ):
            count, newest = counts.get(run_id, (0, 0))
            keys[run_id] = f"{count}|{newest}|{updated_at}|{definition_hash}|{__version__}"
        return keys

    def cached_summaries(self, keys: dict[str, str]) -> dict[str, dict[str, Any]]:
        """The remembered summaries whose key still matches (none on a journal without the
        table, e.g. one opened read-only that was never opened for writing since)."""
        try:
            rows = self._db.execute("SELECT run_id, key, summary_json FROM summaries").fetchall()
        except sqlite3.OperationalError:  # no such table: nothing remembered yet
            return {}
        found = {}
        for run_id, key, text in rows:
            if keys.get(run_id) != key:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                found[run_id] = value
        return found

    def store_summaries(self, entries: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Remember summaries (run id → (key, summary)) in one transaction."""
        if not entries:
            return
        stamp = now()
        rows = [
            (run_id, key, json.dumps(summary, allow_nan=True), stamp)
            for run_id, (key, summary) in entries.items()
        ]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO summaries(run_id, key, summary_json, computed_at)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
