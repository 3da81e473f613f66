"""The journal: one SQLite file (WAL) holding every run and every request the moment it completes.

Each completed request is committed on its own, so a Ctrl-C or `kill -9` loses at most the
requests still in flight; `(run_id, condition, sample_index)` is unique, so a resume can never
record the same sample twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    config_json TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    message TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    condition TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER,
    request_json TEXT NOT NULL,
    response_json TEXT,
    content TEXT,
    finish_reason TEXT,
    answer TEXT,
    valid INTEGER NOT NULL,
    invalid_category TEXT,
    probs_json TEXT,
    coverage REAL,
    cost REAL,
    meta_json TEXT,
    latency_s REAL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, condition, sample_index)
);
CREATE INDEX IF NOT EXISTS samples_run ON samples (run_id, condition);
"""


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

    @property
    def display_status(self) -> str:
        """`running` only while its process lives; a killed run shows as `stopped`."""
        if self.status == "running" and not pid_alive(self.pid):
            return "stopped"
        return self.status


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


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_readable(path: Path) -> None:
    """Refuse a path that is not a journal before anything is written to it."""
    if path.is_dir():
        raise FlipbenchError(f"journal {path} is a directory, not a database file")
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise FlipbenchError(f"cannot read journal {path}: {exc.strerror}") from None
    if header and header != b"SQLite format 3\x00":
        raise FlipbenchError(f"journal {path} is not a flipbench (SQLite) database")


class Journal:
    """The run store; opened per command, safe to reopen after a crash."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        check_readable(self.path)
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise FlipbenchError(f"no journal at {self.path} (run something first, or pass --db)")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        except sqlite3.DatabaseError as exc:
            raise FlipbenchError(f"cannot use journal {self.path}: {exc}") from None

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
            (status, message, pid, now(), run_id),
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
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise FlipbenchError(f"no run {run_id!r} in {self.path} (see `flipbench runs`)")
        return _run_row(row)

    def list_runs(self) -> list[RunRow]:
        rows = self._db.execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        return [_run_row(r) for r in rows]

    # samples --------------------------------------------------------------------------------
    def record(self, run_id: str, s: SampleRecord) -> None:
        """Commit one completed request at once (autocommit), so a crash cannot lose it."""
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
                s.content,
                s.finish_reason,
                s.answer,
                int(s.valid),
                s.invalid_category,
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
