"""The journal's `runs` table: one row per run, with the configuration and definition it ran.

Split from `store` so that a run's life (created, its status and mode changed, read back) is
read in one place, apart from the per-request rows of `journal_samples`. A run shows as
`running` only while a process holds its OS lock (`RunLock`), so a killed run reads `stopped`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.journal_checks import is_valid_run_id, validate_run_id
from flipbench.journal_file import JournalFile, now
from flipbench.runlock import RunLock, pid_alive
from flipbench.safety import mask_secrets, storable


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


class RunTable(JournalFile):
    """The operations on the `runs` table of an open journal."""

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

    def delete_run(self, run_id: str) -> int:
        """Remove a run, its samples and its in-flight marks in one transaction (all or
        nothing); returns how many samples went. The caller holds the run's lock."""
        validate_run_id(run_id)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            removed = self._db.execute("DELETE FROM samples WHERE run_id = ?", (run_id,)).rowcount
            self._db.execute("DELETE FROM in_flight WHERE run_id = ?", (run_id,))
            self._db.execute("DELETE FROM summaries WHERE run_id = ?", (run_id,))
            if not self._db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount:
                raise FlipbenchError(f"no run {run_id!r} in {self.path} (see `flipbench runs`)")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(removed)

    def get_run(self, run_id: str) -> RunRow:
        validate_run_id(run_id)
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise FlipbenchError(f"no run {run_id!r} in {self.path} (see `flipbench runs`)")
        return self._run_row(row)

    def has_run(self, run_id: str) -> bool:
        """Whether a run of this id exists (one indexed lookup, not a listing)."""
        return (
            self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            is not None
        )

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
