"""A matrix's Python API: plan, start, resume, read back.

from flipbench.matrix.api import start_matrix
options = MatrixOptions(experiments=["single-flip"], interventions=["given-seed", "cot"],
                        models=["local/smollm2"], run=RunConfig(n=20))
outcome = start_matrix(options, notify=print)

Every cell is validated (experiment, model, intervention and their combination, as `run`
would) and the plan handed to `notify` before the matrix is recorded or any model is asked;
`dry_run` stops there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flipbench import api
from flipbench.config import default_db_path
from flipbench.errors import FlipbenchError
from flipbench.matrix.cells import MATRIX_KIND, MatrixOptions, cell_run_id, new_matrix_id
from flipbench.matrix.runner import MatrixRunner, Notify
from flipbench.matrix.table import MatrixTable, matrix_table
from flipbench.store import Journal, NoJournal, RunLock, check_writable
from flipbench.sweep.journal import SweepJournal, SweepRow

if TYPE_CHECKING:
    from flipbench.report.matrix_view import MatrixView

__all__ = [
    "MatrixOutcome", "get_matrix", "matrix_report_view", "matrix_table_of", "plan_lines",
    "resume_matrix", "start_matrix",
]  # fmt: skip


def _silent(text: str) -> None:
    """Notices go nowhere unless the caller asks for them."""


@dataclass
class MatrixOutcome:
    """What a matrix left behind (only the plan, for a dry run)."""

    matrix_id: str | None
    status: str
    plan: list[str]
    row: SweepRow | None = None


def plan_lines(options: MatrixOptions) -> list[str]:
    """Validate every cell as `run` would, and say what the matrix will ask."""
    cells = options.cells()
    calls = 0
    per_cell = []
    for cell in cells:
        experiment = api.check_run(options.run_config(cell, "matrix-plan", None))
        n_cell = len(experiment.conditions()) * experiment.n
        calls += n_cell
        per_cell.append(
            f"  {cell.label}: {len(experiment.conditions())} conditions × N={experiment.n}"
        )
    cap = options.run.max_attempts_factor
    budget = "no --max-cost" if options.max_cost is None else f"--max-cost ${options.max_cost:g}"
    return [
        f"plan: {len(options.experiments)} experiment(s) × {len(options.interventions)}"
        f" intervention(s) × {len(options.models)} model(s) = {len(cells)} runs, one after"
        f" another; {calls:,} valid samples (at most {cap:g}× as many attempts); {budget} for"
        " the whole matrix (each run also prints its own plan)",
        *per_cell,
    ]


def start_matrix(
    options: MatrixOptions,
    db: Path | None = None,
    *,
    notify: Notify = _silent,
    progress: bool = False,
    dry_run: bool = False,
) -> MatrixOutcome:
    """Plan (to `notify`), then record and run the matrix; `dry_run` stops after the plan."""
    db = db or default_db_path()
    plan = plan_lines(options)
    for line in plan:
        notify(line)
    if dry_run:
        return MatrixOutcome(None, "planned", plan)
    check_writable(db)
    matrix_id = new_matrix_id()
    cells = options.cells()
    members = [(c.label, cell_run_id(matrix_id, i)) for i, c in enumerate(cells)]
    config = {
        "kind": MATRIX_KIND,
        "options": options.model_dump(mode="json"),
        "cells": [c.model_dump(mode="json") for c in cells],
    }
    n = options.run.n or 0
    with Journal(db), SweepJournal(db) as journal:  # Journal(db): the core tables first
        journal.create_sweep(matrix_id, MATRIX_KIND, n, options.max_cost, config, members)
        row = journal.get_sweep(matrix_id)
    notify(f"matrix {matrix_id}: {len(cells)} runs; resume with --resume {matrix_id}")
    status = _execute(db, row, notify, progress)
    return MatrixOutcome(matrix_id, status, plan, get_matrix(matrix_id, db))


def _execute(db: Path, row: SweepRow, notify: Notify, progress: bool) -> str:
    """Hold the matrix's own lock while it runs: a second resume is refused at once."""
    with RunLock(db, row.sweep_id):
        return asyncio.run(MatrixRunner(db, row, notify, progress).run())


def resume_matrix(
    matrix_id: str, db: Path | None = None, *, max_cost: float | None = None,
    notify: Notify = _silent, progress: bool = False,
) -> MatrixOutcome:  # fmt: skip
    """Continue a matrix's unfinished cells (with a larger budget: `max_cost`)."""
    db = db or default_db_path()
    row = get_matrix(matrix_id, db)
    with RunLock(db, matrix_id):  # refused at once, before anything changes, if it is running
        pass
    if max_cost is not None:
        options = MatrixOptions(**{**row.config["options"], "max_cost": max_cost})
        with SweepJournal(db) as journal:
            row = journal.raise_budget(row, options.model_dump(mode="json"), max_cost)
    status = _execute(db, row, notify, progress)
    return MatrixOutcome(matrix_id, status, [], get_matrix(matrix_id, db))


def get_matrix(matrix_id: str, db: Path | None = None) -> SweepRow:
    """The stored matrix (a sweep id is refused: `flipbench sweep show` reads those)."""
    db = db or default_db_path()
    try:
        with SweepJournal(db, create=False) as journal:
            row = journal.get_sweep(matrix_id)
    except NoJournal:
        raise FlipbenchError(f"no matrix {matrix_id!r}: there is no journal at {db}") from None
    if row.config.get("kind") != MATRIX_KIND:
        raise FlipbenchError(
            f"{matrix_id} is a sweep, not a matrix: flipbench sweep show {matrix_id}"
        )
    return row


def matrix_table_of(matrix_id: str, db: Path | None = None) -> MatrixTable:
    """The matrix's table (each intervention against `direct`), read back from the journal."""
    db = db or default_db_path()
    row = get_matrix(matrix_id, db)
    with Journal(db, create=False) as journal:
        return matrix_table(journal, row)


def matrix_report_view(matrix_id: str, db: Path | None = None) -> MatrixView:
    """The matrix's section of the HTML report."""
    from flipbench.matrix.report import matrix_view  # matplotlib loads here
    from flipbench.report.gap import knowledge_gap

    db = db or default_db_path()
    table = matrix_table_of(matrix_id, db)
    with Journal(db, create=False) as journal:
        known = {r.run_id for r in journal.list_runs()}
        gaps = [
            knowledge_gap(journal, r.run_id) for r in table.rows
            if r.intervention == "verbalized" and r.run_id in known and r.valid > 0
        ]  # fmt: skip
    return matrix_view(table, gaps)
