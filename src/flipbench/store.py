"""The journal: one SQLite file (WAL) holding every run and every request the moment it completes.

Each completed request is committed on its own, so a Ctrl-C or `kill -9` loses at most the
requests still in flight; `(run_id, condition, sample_index)` is unique, so a resume can never
record the same sample twice. A run being executed holds an OS lock (`RunLock`) for its whole life,
so no two processes can run it at once. The journal refuses files that are not its own (a foreign
SQLite file, a newer schema) before writing anything, and is read without writing a byte when it
is read-only.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.journal_checks import (
    NoJournal,
    check_readable,
    check_writable,
    inside,
    is_read_only,
    is_valid_run_id,
    validate_run_id,
)
from flipbench.journal_schema import CORE_COLUMNS, IN_FLIGHT_SCHEMA, SCHEMA, SCHEMA_VERSION
from flipbench.runlock import BUSY_TIMEOUT_S, RunLock, RunLocked, lock_dir, pid_alive
from flipbench.safety import mask_secrets, storable

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "NoJournal",
    "RunLock",
    "RunLocked",
    "RunRow",
    "SampleRecord",
    "check_readable",
    "check_writable",
    "inside",
    "lock_dir",
    "pid_alive",
    "validate_run_id",
]


def now() -> str:
    """UTC timestamps in ISO form, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RunRow:
    """A run as stored: its resolved configuration and definition travel with it."""

    run_id: str
    experiment: str
    model: str
    mode: str
    status: str
    created_at: str
    updated_at: str
    config: dict[str, Any]
    definition: dict[str, Any]
    definition_hash: str
    versions: dict[str, Any]
    message: str | None
    pid: int | None = None
    locked: bool | None = None  # whether a process holds the run's lock (None: not looked at)

    @property
    def display_status(self) -> str:
        """`running` only while a process holds the run's lock; a killed run shows as `stopped`."""
        if self.status != "running":
            return self.status
        alive = pid_alive(self.pid) if self.locked is None else self.locked
        return "running" if alive else "stopped"


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


class Journal:
    """The run store; opened per command, safe to reopen after a crash."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        """`create=True` (writing commands): make the journal if missing; refuse a read-only one.
        `create=False` (reading commands): never create or write anything; a read-only journal
        (file or folder) is opened read-only. Either way a foreign SQLite file or a journal of a
        newer schema is refused before anything is written."""
        self.path = Path(path)
        check_readable(self.path)
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise NoJournal(f"no journal at {self.path} (run something first, or pass --db)")
        if create:
            check_writable(self.path)
        self.read_only = not create and is_read_only(self.path)
        try:
            if self.read_only:
                self._db = _connect_read_only(self.path)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except sqlite3.DatabaseError as exc:
            raise FlipbenchError(f"cannot use journal {self.path}: {exc}") from None
        try:
            self._db.row_factory = sqlite3.Row
            # Text another tool wrote as invalid UTF-8 is read with replacement characters
            # rather than making every read of the run raise.
            self._db.text_factory = _decode
            if create:
                self._prepare()
            elif not self._check_schema():
                raise NoJournal(f"no journal at {self.path} (run something first, or pass --db)")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise FlipbenchError(f"cannot use journal {self.path}: {_explain(exc, self)}") from None
        except BaseException:
            self._db.close()
            raise

    def _check_schema(self) -> bool:
        """True for a flipbench journal, False for an SQLite file with no tables yet; refuses a
        foreign database or a newer schema (reads only)."""
        names = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        tables = {r[0] for r in names} - {"sqlite_sequence"}
        if not tables:
            return False
        if "meta" not in tables:
            raise self._foreign(f"tables {', '.join(sorted(tables)[:5])} but no flipbench meta")
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError:
            row = None
        try:
            version = int(row[0]) if row is not None else None
        except (TypeError, ValueError):
            version = None
        if version is None:
            raise self._foreign("no flipbench schema_version")
        if version > SCHEMA_VERSION:
            raise FlipbenchError(
                f"journal {self.path} has schema version {version}, newer than this flipbench"
                f" reads (schema version {SCHEMA_VERSION}); upgrade flipbench to use it"
                " (nothing was written)"
            )
        for table, columns in CORE_COLUMNS.items():
            found = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
            if not columns <= found:
                raise self._foreign(f"its {table!r} table is not flipbench's")
        return True

    def _foreign(self, why: str) -> FlipbenchError:
        return FlipbenchError(
            f"{self.path} is an SQLite database but not a flipbench journal ({why}); it was left"
            " untouched: pass another --db"
        )

    def _prepare(self) -> None:
        """Check or create the schema in one write transaction, so that many processes creating
        the same new journal at once all see it whole; only then switch a journal to WAL."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._check_schema():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self._db.execute(IN_FLIGHT_SCHEMA)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        give_up = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:  # another process is opening it right now
                if "locked" not in str(exc) or time.monotonic() > give_up:
                    raise
                time.sleep(0.05)
        self._db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs -----------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        experiment: str,
        model: str,
        mode: str,
        config: dict[str, Any],
        definition: dict[str, Any],
        definition_hash: str,
        versions: dict[str, Any],
    ) -> None:
        validate_run_id(run_id)
        stamp = now()
        try:
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    run_id,
                    experiment,
                    model,
                    mode,
                    stamp,
                    stamp,
                    json.dumps(config, sort_keys=True),
                    json.dumps(definition, sort_keys=True),
                    definition_hash,
                    json.dumps(versions, sort_keys=True),
                    os.getpid(),
                ),
            )
        except sqlite3.IntegrityError:
            raise FlipbenchError(
                f"run {run_id!r} already exists; use --resume {run_id} to continue it"
            ) from None

    def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Record a status; `running` also records this process, so a crash is recognisable."""
        pid = os.getpid() if status == "running" else None
        self._db.execute(
            "UPDATE runs SET status = ?, message = ?, pid = ?, updated_at = ? WHERE run_id = ?",
            (
                status,
                None if message is None else storable(mask_secrets(message)),
                pid,
                now(),
                run_id,
            ),
        )

    def set_mode(self, run_id: str, mode: str, config: dict[str, Any]) -> None:
        """Exact mode fell back to sampling (only when the user allowed it): record the change."""
        self._db.execute(
            "UPDATE runs SET mode = ?, config_json = ?, updated_at = ? WHERE run_id = ?",
            (mode, json.dumps(config, sort_keys=True), now(), run_id),
        )

    def update_versions(self, run_id: str, versions: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE runs SET versions_json = ?, updated_at = ? WHERE run_id = ?",
            (json.dumps(versions, sort_keys=True), now(), run_id),
        )

    def get_run(self, run_id: str) -> RunRow:
        validate_run_id(run_id)
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise FlipbenchError(f"no run {run_id!r} in {self.path} (see `flipbench runs`)")
        return self._run_row(row)

    def list_runs(self) -> list[RunRow]:
        """Every run, including any whose stored id is unusable (listed, never used as a path)."""
        rows = self._db.execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        return [self._run_row(r) for r in rows]

    def _run_row(self, row: sqlite3.Row) -> RunRow:
        run = _run_row(row)
        if run.status != "running":
            return run
        locked = RunLock.held(self.path, run.run_id) if is_valid_run_id(run.run_id) else False
        return replace(run, locked=locked)

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

    def samples(self, run_id: str) -> Iterator[sqlite3.Row]:
        """Every stored row of a run, in the order they were recorded."""
        yield from self._db.execute("SELECT * FROM samples WHERE run_id = ? ORDER BY id", (run_id,))

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


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _text(value: str | None) -> str | None:
    """What SQLite's UTF-8 accepts (lone surrogates escaped), whatever a backend passed on."""
    return None if value is None else storable(value)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that writes nothing, not even -wal/-shm files: `immutable` when
    there is no pending write-ahead log (the file alone is the whole journal)."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if pending else "&immutable=1")
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)


def _explain(exc: sqlite3.DatabaseError, journal: Journal) -> str:
    if journal.read_only and "unable to open" in str(exc):
        return (
            f"it is read-only and its write-ahead log ({journal.path.name}-wal) holds changes"
            " SQLite can only read with write access to its folder; make the folder writable, or"
            " copy the journal with its -wal file elsewhere"
        )
    return str(exc)


def _run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        run_id=row["run_id"],
        experiment=row["experiment"],
        model=row["model"],
        mode=row["mode"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        config=json.loads(row["config_json"]),
        definition=json.loads(row["definition_json"]),
        definition_hash=row["definition_hash"],
        versions=json.loads(row["versions_json"]),
        message=row["message"],
        pid=row["pid"],
    )
