"""The journal's per-request tables: `samples` (every completed request) and `in_flight`.

Split from `store` so that what a run did and what it cost are read and written in one place,
apart from the run rows of `journal_runs`. Each completed request is committed on its own, so a
crash loses at most the requests still in flight; a paid request is marked in flight just before
it is sent, so a crash can never hide what it was charged (`mark_lost_calls`, `spent`).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from flipbench.journal_file import JournalFile, now
from flipbench.safety import storable

#: The `samples` table's columns, the only names `SampleTable.samples(columns=…)` accepts.
SAMPLE_COLUMNS = frozenset(
    {
        "id", "run_id", "condition", "sample_index", "status", "http_status", "request_json",
        "response_json", "content", "finish_reason", "answer", "valid", "invalid_category",
        "probs_json", "coverage", "cost", "meta_json", "latency_s", "created_at",
    }
)  # fmt: skip


@dataclass
class SampleRecord:
    """One completed request: what was sent, what came back, and how it was read."""

    condition: str
    sample_index: int
    status: str
    request: dict[str, Any]
    response: Any
    valid: bool
    http_status: int | None = None
    content: str | None = None
    finish_reason: str | None = None
    answer: str | None = None
    invalid_category: str | None = None
    probs: dict[str, float] | None = None
    coverage: float | None = None
    cost: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    latency_s: float | None = None


class SampleTable(JournalFile):
    """The operations on the `samples` and `in_flight` tables of an open journal."""

    # samples --------------------------------------------------------------------------------
    def record(self, run_id: str, s: SampleRecord) -> None:
        """Commit one completed request at once, so a crash cannot lose it; its in-flight
        mark (if any) goes in the same transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._insert(run_id, s)
            self._db.execute(
                "DELETE FROM in_flight WHERE run_id = ? AND condition = ? AND sample_index = ?"
                " AND lost = 0",
                (run_id, s.condition, s.sample_index),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _insert(self, run_id: str, s: SampleRecord) -> None:
        self._db.execute(
            "INSERT INTO samples (run_id, condition, sample_index, status, http_status,"
            " request_json, response_json, content, finish_reason, answer, valid,"
            " invalid_category, probs_json, coverage, cost, meta_json, latency_s, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                s.condition,
                s.sample_index,
                s.status,
                s.http_status,
                json.dumps(s.request),
                None if s.response is None else json.dumps(s.response),
                _text(s.content),
                _text(s.finish_reason),
                _text(s.answer),
                int(s.valid),
                _text(s.invalid_category),
                None if s.probs is None else json.dumps(s.probs),
                s.coverage,
                s.cost,
                json.dumps(s.meta) if s.meta else None,
                s.latency_s,
                now(),
            ),
        )

    def condition_counts(self, run_id: str) -> dict[str, tuple[int, int, int]]:
        """Per condition: (valid rows, all rows, next free sample index)."""
        rows = self._db.execute(
            "SELECT condition, SUM(valid), COUNT(*), MAX(sample_index) FROM samples"
            " WHERE run_id = ? GROUP BY condition",
            (run_id,),
        ).fetchall()
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]) + 1) for r in rows}

    def samples(self, run_id: str, columns: Sequence[str] | None = None) -> Iterator[sqlite3.Row]:
        """Every stored row of a run, in the order they were recorded; `columns` (names from
        `SAMPLE_COLUMNS`) reads only those: the request and response bodies are most of a
        journal's bytes, and reading them back is most of the time of `show` on a large run."""
        names = "*"
        if columns is not None:
            unknown = set(columns) - SAMPLE_COLUMNS
            if unknown or not columns:
                raise ValueError(f"unknown sample columns: {sorted(unknown)}")
            names = ", ".join(columns)
        yield from self._db.execute(
            f"SELECT {names} FROM samples WHERE run_id = ? ORDER BY id", (run_id,)
        )

    # spend ----------------------------------------------------------------------------------
    def begin_call(self, run_id: str, condition: str, sample_index: int) -> None:
        """Mark a paid request as sent, just before it is sent (see `IN_FLIGHT_SCHEMA`); one
        row per request, so a sample's retries and chained turns each count."""
        self._db.execute(
            "INSERT INTO in_flight (run_id, condition, sample_index, started_at)"
            " VALUES (?, ?, ?, ?)",
            (run_id, condition, sample_index, now()),
        )

    def mark_lost_calls(self, run_id: str) -> int:
        """Calls a dead process sent but never journaled: count each at the largest cost of
        one call in the run (conservative: it was paid, its price unknown). Only the holder of
        the run's lock may call this. Returns how many were found."""
        if not self._has_in_flight():
            return 0
        row = self._db.execute(
            "SELECT MAX(cost) FROM samples WHERE run_id = ? AND cost >= 0", (run_id,)
        ).fetchone()
        largest = row[0] if row and row[0] is not None and math.isfinite(row[0]) else 0.0
        cursor = self._db.execute(
            "UPDATE in_flight SET lost = 1, counted_cost = ? WHERE run_id = ? AND lost = 0",
            (largest, run_id),
        )
        return cursor.rowcount

    def lost_calls(self, run_id: str) -> tuple[int, float]:
        """Calls lost in flight when a process died, and the cost counted for them."""
        if not self._has_in_flight():
            return 0, 0.0
        row = self._db.execute(
            "SELECT COUNT(*), TOTAL(counted_cost) FROM in_flight WHERE run_id = ? AND lost = 1",
            (run_id,),
        ).fetchone()
        return int(row[0]), float(row[1])

    def spent(self, run_id: str) -> float:
        """USD the run has spent: every journaled cost plus the calls lost in flight (+inf when
        the sum overflows; negative or NaN stored costs count as nothing)."""
        costs = [
            r[0]
            for r in self._db.execute(
                "SELECT cost FROM samples WHERE run_id = ? AND cost IS NOT NULL", (run_id,)
            )
            if not math.isnan(r[0]) and r[0] > 0
        ]
        costs.append(self.lost_calls(run_id)[1])
        try:
            return math.fsum(costs)
        except OverflowError:
            return math.inf

    def _has_in_flight(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'in_flight'"
        ).fetchone()
        return row is not None


def _text(value: str | None) -> str | None:
    """What SQLite's UTF-8 accepts (lone surrogates escaped), whatever a backend passed on."""
    return None if value is None else storable(value)
