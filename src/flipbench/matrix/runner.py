"""Running a matrix: its cells one after another, each an ordinary run, one budget for all.

Cells run in order, not side by side: a matrix is typically one or a few models asked many
ways, and a local model's server owns the machine's cores (two at once would halve each
other), while an API cell already sends its own requests concurrently. The budget belongs to
the matrix: each cell may spend what the matrix has left (plus, on a resume, what the cell
itself had already spent), and once it is spent the matrix stops with the unfinished cells
left for `--resume`. A cell whose model cannot answer at all (404, a key without access) is
`skipped` with the reason and never retried; a cell that fails is recorded as `failed` and
the next one runs. After `kill -9`, a resume continues the cell that was running (its
journaled samples are never asked again) and starts the ones never started under their
planned run ids.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flipbench import api
from flipbench.errors import BackendFatalError, FlipbenchError
from flipbench.matrix.cells import Cell, MatrixOptions
from flipbench.providers.keys import KeysExhausted
from flipbench.store import Journal
from flipbench.sweep.journal import FINAL_STATES, SweepJournal, SweepModel, SweepRow

Notify = Callable[[str], None]


def _spent(db: Path, run_ids: list[str]) -> dict[str, float]:
    with Journal(db, create=False) as journal:
        known = {r.run_id for r in journal.list_runs()}
        return {r: journal.spent(r) for r in run_ids if r in known}


class MatrixRunner:
    """Runs (or resumes) the unfinished cells of one stored matrix."""

    def __init__(self, db: Path, row: SweepRow, notify: Notify, progress: bool = False) -> None:
        self.db = db
        self.row = row
        self.notify = notify
        self.progress = progress
        self.options = MatrixOptions(**row.config["options"])
        self.cells = [Cell(**c) for c in row.config["cells"]]

    async def run(self) -> str:
        """Every unfinished cell in order; returns the matrix's status (also recorded)."""
        todo = [m for m in self.row.models if m.state not in FINAL_STATES]
        stop: str | None = None  # why the matrix stopped before its last cell
        # Each cell's spend, read once, then only the cell just run is read again.
        spent = _spent(self.db, [m.run_id for m in self.row.models])
        with SweepJournal(self.db) as journal:
            for done, member in enumerate(todo, 1):
                left = self._left(sum(spent.values()))
                if left is not None and left <= 0:
                    stop = "budget reached"
                    break
                cell = self.cells[member.position]
                self.notify(f"cell {done}/{len(todo)}: {cell.label} (run {member.run_id})")
                journal.set_model_state(self.row.sweep_id, member.model, "running", None)
                own = spent.get(member.run_id)
                state, reason = await self._cell(cell, member, left, own)
                spent.update(_spent(self.db, [member.run_id]))
                journal.set_model_state(self.row.sweep_id, member.model, state, reason)
                if state in ("skipped", "failed"):
                    self.notify(f"{state} {cell.label}: {reason}")
                if state == "stopped":
                    stop = reason or "stopped"
                    break
            return self._finish(journal, stop)

    def _left(self, spent: float) -> float | None:
        cap = self.options.max_cost
        return None if cap is None else cap - spent

    async def _cell(
        self, cell: Cell, member: SweepModel, left: float | None, own: float | None
    ) -> tuple[str, str | None]:
        try:
            if own is not None:  # started before: resume it, its own spend on top of what is left
                outcome = await api.resume_run_async(
                    member.run_id, self.db, progress=self.progress, notify=self.notify,
                    max_cost=None if left is None else left + own, results=False,
                )  # fmt: skip
            else:
                config = self.options.run_config(cell, member.run_id, left)
                outcome = await api.start_run_async(
                    config, self.db, progress=self.progress, notify=self.notify, results=False
                )
            return outcome.status, outcome.message
        except KeysExhausted as exc:  # no fault of the cell: the matrix waits for a key
            return "stopped", str(exc)
        except BackendFatalError as exc:
            return "skipped", str(exc)
        except FlipbenchError as exc:
            return "failed", str(exc)
        except Exception as exc:  # one cell's bug must not lose the others' work
            return "failed", f"internal error: {exc!r}"

    def _finish(self, journal: SweepJournal, stop: str | None) -> str:
        matrix_id = self.row.sweep_id
        open_ = [m for m in journal.get_sweep(matrix_id).models if m.state not in FINAL_STATES]
        if not open_:
            status, message = "complete", None
        elif stop is not None:
            status = "stopped"
            more = " --max-cost <more>" if stop.startswith("budget reached") else ""
            message = (
                f"stopped ({stop.split(';')[0]}): {len(open_)} cell(s) unfinished; continue"
                f" with flipbench matrix --resume {matrix_id}{more}"
            )
        else:
            status = "incomplete"
            message = f"{len(open_)} cell(s) unfinished; continue with --resume {matrix_id}"
        journal.set_sweep_status(matrix_id, status, message)
        return status
