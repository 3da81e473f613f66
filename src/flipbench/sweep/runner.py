"""Running a sweep: every model an ordinary run, side by side on one event loop.

Each model's work is a flipbench run (journaled sample by sample, resumable, readable by
`show`/`export`), started or resumed through the Python API with the sweep's shared backend
(`pool`): one budget, one cap on requests in flight, each model with its own adaptive limit.
A model that fails fatally (404, 403, no endpoint, a key without access) stops after its first
fatal reply, at most the 4 calls its limit starts with, and is recorded as skipped with the
reason; it is never retried. A resume continues only the models not yet finished: a finished
run is left alone, a started one is resumed (its samples are never asked again), a model never
started is started under its planned run id. When every API key is out of credit the models
left are stopped, not skipped, and the sweep raises `KeysExhausted` once its state is recorded:
it resumes where it stopped once a key has credit again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flipbench import api
from flipbench.config import RunConfig
from flipbench.errors import BackendFatalError, FlipbenchError
from flipbench.providers.keys import KeysExhausted
from flipbench.store import Journal
from flipbench.sweep.journal import FINAL_STATES, SweepJournal, SweepModel, SweepRow
from flipbench.sweep.pool import SweepPool

Notify = Callable[[str], None]


class SweepOptions(BaseModel):
    """How a sweep asks every model (stored with it; a resume may change only the budget)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: str = "fair-coin"
    intervention: str = Field(default="direct", max_length=64)
    n: int | None = Field(default=None, ge=1, le=1_000_000)
    grid: str | None = None
    max_cost: float | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)
    global_cap: int = Field(default=64, ge=1, le=4096, description="requests in flight, all models")
    per_model: int = Field(default=8, ge=1, le=4096, description="requests in flight, one model")
    models_at_once: int = Field(default=32, ge=1, le=4096, description="models run side by side")
    timeout_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    max_retries: int = Field(default=8, ge=0, le=100)
    max_attempts_factor: float = Field(default=5.0, ge=1.0, le=1000.0, allow_inf_nan=False)

    def run_config(self, model: str, run_id: str) -> RunConfig:
        """The ordinary run of one model."""
        return RunConfig(
            experiment=self.experiment, model=model, n=self.n, grid=self.grid,
            intervention=self.intervention,
            max_cost=self.max_cost, max_concurrency=self.per_model, run_id=run_id,
            timeout_s=self.timeout_s, max_retries=self.max_retries,
            max_attempts_factor=self.max_attempts_factor,
        )  # fmt: skip


def new_sweep_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"sweep-{stamp}-{secrets.token_hex(2)}"


def run_id_of(sweep_id: str, position: int) -> str:
    """Each model's run is named after its sweep (the tag `runs` and `show` see)."""
    return f"{sweep_id}-{position:03d}"


def _silent(text: str) -> None:
    """Notices go nowhere unless the caller asks for them."""


class SweepRunner:
    """Runs (or resumes) the unfinished models of one stored sweep."""

    def __init__(self, db: Path, sweep: SweepRow, notify: Notify = _silent) -> None:
        self.db = db
        self.sweep = sweep
        self.notify = notify
        self.options = SweepOptions(**sweep.config["options"])
        self.catalogue: dict[str, dict[str, Any]] = sweep.config.get("catalogue", {})
        self._journal: SweepJournal | None = None
        self._keys_stop: KeysExhausted | None = None

    async def run(self) -> str:
        """Run every unfinished model; returns the sweep's status (recorded in the journal)."""
        sweep, options = self.sweep, self.options
        with Journal(self.db, create=False) as journal:
            known = {r.run_id for r in journal.list_runs()}
            spent = {
                f"openrouter/{m.model}": journal.spent(m.run_id)
                for m in sweep.models
                if m.run_id in known
            }
        pool = SweepPool(options.max_cost, options.global_cap, sum(spent.values()))
        pool.entries, pool.counted = self.catalogue, spent
        gate = asyncio.Semaphore(options.models_at_once)
        todo = [m for m in sweep.models if m.state not in FINAL_STATES]
        # One connection for the models' states (each update commits on its own).
        with SweepJournal(self.db) as self._journal:
            await asyncio.gather(*(self._one(m, pool, gate, m.run_id in known) for m in todo))
            status = self._finish(self._journal, pool)
        if self._keys_stop is not None:  # recorded as stopped; the caller is told as an error
            raise self._keys_stop
        return status

    async def _one(
        self, model: SweepModel, pool: SweepPool, gate: asyncio.Semaphore, started: bool
    ) -> None:
        async with gate:
            if pool.budget.reached:
                self._state(model, "stopped", "budget reached before it started")
                return
            if pool.keys.exhausted:
                self._state(model, "stopped", "every key was out of credit before it started")
                return
            self._state(model, "running", None)
            try:
                outcome = await self._execute(model, pool, started)
                state, reason = outcome.status, outcome.message
            except KeysExhausted as exc:  # the account's fault, not the model's: resumable
                state, reason = "stopped", str(exc)
            except BackendFatalError as exc:
                state, reason = "skipped", str(exc)
            except FlipbenchError as exc:
                state, reason = "failed", str(exc)
            except Exception as exc:  # one model's bug must not lose the others' work
                state, reason = "failed", f"internal error: {exc!r}"
            self._state(model, state, reason)
            if state == "skipped":
                self.notify(f"skipped {model.model}: {reason}")

    async def _execute(self, model: SweepModel, pool: SweepPool, started: bool) -> api.RunOutcome:
        options = self.options
        if started:
            return await api.resume_run_async(
                model.run_id, self.db, max_cost=options.max_cost, make_backend=pool.backend,
                results=False,
            )  # fmt: skip
        config = options.run_config(f"openrouter/{model.model}", model.run_id)
        return await api.start_run_async(config, self.db, make_backend=pool.backend, results=False)

    def _state(self, model: SweepModel, state: str, reason: str | None) -> None:
        assert self._journal is not None
        self._journal.set_model_state(self.sweep.sweep_id, model.model, state, reason)

    def _finish(self, journal: SweepJournal, pool: SweepPool) -> str:
        sweep_id = self.sweep.sweep_id
        open_ = [m for m in journal.get_sweep(sweep_id).models if m.state not in FINAL_STATES]
        if not open_:
            status, message = "complete", None
        elif pool.keys.exhausted:
            status = "stopped"
            spent = pool.keys.exhausted_error(f"continue with --resume {sweep_id}")
            message = f"{spent}; {len(open_)} model(s) unfinished"
            self._keys_stop = KeysExhausted(message, spent.labels)
        elif pool.budget.reached:
            status = "stopped"
            message = (
                f"budget reached: spent ${pool.budget.spent:.4f} of"
                f" ${pool.budget.max_cost_usd or 0:.4f}; {len(open_)} model(s) unfinished;"
                f" continue with --resume {sweep_id} --max-cost <more>"
            )
        else:
            status = "incomplete"
            message = f"{len(open_)} model(s) unfinished; continue with --resume {sweep_id}"
        journal.set_sweep_status(sweep_id, status, message)
        return status
