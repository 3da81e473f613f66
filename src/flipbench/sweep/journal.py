"""A sweep in the journal: two small tables beside `runs`, added on first use.

`sweeps` holds what the sweep is (its id, experiment, N, budget, the options it was started
with, its status) and `sweep_models` each model's place in it: the run that holds its samples
(an ordinary run, so `show`, `export` and `report` work on it), its state and, for a skipped
model, the reason. The samples themselves stay in `samples`, journaled by the runs.

The tables are additive: journals made before them get them on the first sweep, older
flipbench versions ignore them, and their own version (`meta.sweeps_schema`) lets a later
change be recognised; a journal whose sweep tables are newer than this code is refused.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.journal_checks import validate_run_id
from flipbench.journal_file import JournalFile, now

SWEEPS_SCHEMA_VERSION = 1
SWEEPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    n INTEGER NOT NULL,
    max_cost REAL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_models (
    sweep_id TEXT NOT NULL REFERENCES sweeps(sweep_id),
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (sweep_id, model)
)
"""
#: A model's state: `pending` (not started), `running`, or how its run ended; `skipped` is a
#: model that failed fatally (404, 403, no endpoint) and is never retried.
FINAL_STATES = frozenset({"complete", "incomplete", "skipped"})
#: The `experiment` of a matrix (`flipbench.matrix`): its cells are this table's rows too.
MATRIX_KIND = "matrix"


@dataclass(frozen=True)
class SweepModel:
    """One model of a sweep, as stored."""

    position: int
    model: str
    run_id: str
    state: str
    reason: str | None


@dataclass(frozen=True)
class SweepRow:
    """A sweep as stored, with its models in order."""

    sweep_id: str
    experiment: str
    n: int
    max_cost: float | None
    config: dict[str, Any]
    status: str
    message: str | None
    created_at: str
    models: tuple[SweepModel, ...]


class SweepJournal(JournalFile):
    """The sweep tables of an open journal."""

    def _sweep_tables(self, create: bool = False) -> bool:
        """Whether the tables exist (creating them with `create`); refuses newer ones."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'sweeps_schema'").fetchone()
        if row is not None and int(row[0]) > SWEEPS_SCHEMA_VERSION:
            raise FlipbenchError(
                f"journal {self.path} has sweep tables of version {row[0]}, newer than this"
                f" flipbench reads ({SWEEPS_SCHEMA_VERSION}); upgrade flipbench"
            )
        if row is not None or not create or self.read_only:
            return row is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in SWEEPS_SCHEMA.split(";"):
                self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('sweeps_schema', ?)",
                (str(SWEEPS_SCHEMA_VERSION),),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return True

    def create_sweep(
        self, sweep_id: str, experiment: str, n: int, max_cost: float | None,
        config: dict[str, Any], models: list[tuple[str, str]],
    ) -> None:  # fmt: skip
        """Record a new sweep and its models (model, run id), all pending, in one transaction."""
        validate_run_id(sweep_id, "sweep id")
        self._sweep_tables(create=True)
        stamp = now()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, ?)",
                (sweep_id, experiment, n, max_cost, json.dumps(config), stamp, stamp),
            )
            self._db.executemany(
                "INSERT INTO sweep_models VALUES (?, ?, ?, ?, 'pending', NULL)",
                [(sweep_id, i, m, r) for i, (m, r) in enumerate(models)],
            )
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._db.execute("ROLLBACK")
            raise FlipbenchError(f"sweep {sweep_id!r} already exists") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get_sweep(self, sweep_id: str) -> SweepRow:
        validate_run_id(sweep_id, "sweep id")
        row = None
        if self._sweep_tables():
            row = self._db.execute(
                "SELECT * FROM sweeps WHERE sweep_id = ?", (sweep_id,)
            ).fetchone()
        if row is None:
            raise FlipbenchError(
                f"no sweep {sweep_id!r} in {self.path} (see `flipbench sweep list`)"
            )
        models = self._db.execute(
            "SELECT position, model, run_id, state, reason FROM sweep_models"
            " WHERE sweep_id = ? ORDER BY position",
            (sweep_id,),
        ).fetchall()
        return SweepRow(
            sweep_id=row["sweep_id"], experiment=row["experiment"], n=row["n"],
            max_cost=row["max_cost"], config=json.loads(row["config_json"]),
            status=row["status"], message=row["message"], created_at=row["created_at"],
            models=tuple(SweepModel(*m) for m in models),
        )  # fmt: skip

    def list_sweeps(self) -> list[tuple[str, str, str, int]]:
        """(sweep id, status, created at, number of models) of every sweep, oldest first."""
        if not self._sweep_tables():
            return []
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._db.execute(
                "SELECT s.sweep_id, s.status, s.created_at, COUNT(m.model) FROM sweeps s"
                " LEFT JOIN sweep_models m USING (sweep_id) GROUP BY s.sweep_id"
                " ORDER BY s.created_at"
            )
        ]

    def set_model_state(self, sweep_id: str, model: str, state: str, reason: str | None) -> None:
        self._db.execute(
            "UPDATE sweep_models SET state = ?, reason = ? WHERE sweep_id = ? AND model = ?",
            (state, reason, sweep_id, model),
        )

    def set_sweep_status(
        self, sweep_id: str, status: str, message: str | None, max_cost: float | None = None
    ) -> None:
        """The sweep's status (and, on a resume with a new budget, its cap)."""
        self._db.execute(
            "UPDATE sweeps SET status = ?, message = ?, updated_at = ?,"
            " max_cost = COALESCE(?, max_cost) WHERE sweep_id = ?",
            (status, message, now(), max_cost, sweep_id),
        )

    def raise_budget(self, row: SweepRow, options: dict[str, Any], max_cost: float) -> SweepRow:
        """A resume's new budget: the (validated) options stored, the cap set, running again."""
        config = {**row.config, "options": options}
        self.set_sweep_status(row.sweep_id, "running", None, max_cost)
        self.set_options(row.sweep_id, config)
        return dataclasses.replace(row, config=config, max_cost=max_cost)

    def set_options(self, sweep_id: str, config: dict[str, Any]) -> None:
        """A resume's new budget, stored with the sweep's options."""
        self._db.execute(
            "UPDATE sweeps SET config_json = ?, updated_at = ? WHERE sweep_id = ?",
            (json.dumps(config), now(), sweep_id),
        )
