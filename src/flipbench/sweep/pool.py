"""What a sweep's runs share: one budget and one cap on requests in flight.

Each model of a sweep is an ordinary run with its own backend, adaptive concurrency and
journal rows; what makes them one sweep is that they spend one `--max-cost` and stay under one
global concurrency cap. The budget is shared by giving every run's backend a `SharedBudget`
whose spend is the sweep's total (so `reached` stops every model at once), and the cap by a
`CappedLimiter` that takes a slot of a sweep-wide semaphore after the model's own AIMD slot.
A backend waits near the cap until its own calls in flight are paid for; since at most
`global_cap` calls are in flight over all models, the sweep overshoots its budget by at most
one concurrency window (`global_cap` calls at the largest cost seen).

`SweepBackend` is the OpenRouter backend with these two swapped in and the catalogue entry the
sweep already read (one `GET /models` for the sweep, not one per model). The pool also holds the
sweep's one key ring (`OPENROUTER_API_KEY`, `_0` … `_9`): a key out of credit is retired for
every model at once, not rediscovered by each of them with a 402.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from flipbench.config import RunConfig
from flipbench.providers.keys import KeyRing
from flipbench.providers.limits import AdaptiveLimiter, Budget
from flipbench.providers.openai_api import ApiOptions, OpenRouterBackend


class SharedBudget(Budget):
    """One run's view of the sweep's budget: its cap is the sweep's, its spend the sweep's
    total (every model's calls count against it), its own calls still tracked for `largest`."""

    def __init__(self, pool: Budget) -> None:
        self._pool: Budget | None = None  # nothing forwarded while Budget.__init__ runs
        super().__init__(pool.max_cost_usd, 0.0)
        self._pool = pool

    def add(self, cost: float | None) -> None:
        super().add(cost)
        if self._pool is not None:
            self._pool.add(cost)

    @property
    def spent(self) -> float:
        return self._pool.spent if self._pool is not None else super().spent

    @property
    def largest(self) -> float:
        """The largest call of the whole sweep: a model's first calls near the cap wait for
        those in flight as its older calls would (its own largest is still 0)."""
        pool = self._pool.largest if self._pool is not None else 0.0
        return max(self._own_largest, pool)

    @largest.setter
    def largest(self, value: float) -> None:
        self._own_largest = value
        if self._pool is not None:
            self._pool.largest = max(self._pool.largest, value)


class CappedLimiter(AdaptiveLimiter):
    """A model's AIMD limit under the sweep's global cap: its own slot first (so one model's
    backlog queues on its own limit), then one of the sweep's, for the request's whole life.

    Only `slot()` takes the sweep's slot: `acquire`/`release` stay the model's own, because
    the limiter calls `release` itself when a waiter is cancelled just as a slot is handed to
    it, and a sweep slot released there would never have been taken."""

    def __init__(self, shared: asyncio.Semaphore, cap: int, **kwargs: Any) -> None:
        super().__init__(cap, **kwargs)
        self._shared = shared

    @asynccontextmanager
    async def _both(self) -> AsyncIterator[None]:
        async with super().slot(), self._shared:
            yield

    def slot(self) -> AbstractAsyncContextManager[None]:
        return self._both()


class SweepPool:
    """The budget and global cap of one sweep (in USD; None: no cap), made on its loop."""

    def __init__(self, max_cost: float | None, global_cap: int, already_spent: float = 0.0):
        self.budget = Budget(max_cost, already_spent)
        self.global_cap = global_cap
        self.slots = asyncio.Semaphore(global_cap)
        self.entries: dict[str, dict[str, Any]] = {}  # catalogue entries by model id
        # What each run (by model name) had spent when the sweep started: its share of
        # `already_spent`; a resumed run's calls lost in flight are added when it reopens.
        self.counted: dict[str, float] = {}
        self.keys = KeyRing.from_env("OPENROUTER_API_KEY")

    def backend(self, config: RunConfig) -> SweepBackend:
        """A run's backend (`api.start_run_async(make_backend=…)`)."""
        options = ApiOptions(
            max_concurrency=config.max_concurrency or SweepBackend.default_concurrency,
            max_cost_usd=config.max_cost,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            extra_body=dict(config.model_options),
        )
        backend = SweepBackend(config.model, options, self)
        backend.run_id = config.run_id
        return backend


class SweepBackend(OpenRouterBackend):
    """OpenRouter with the sweep's budget, global cap and catalogue entry."""

    def __init__(self, model: str, options: ApiOptions, pool: SweepPool) -> None:
        super().__init__(model, options)
        self.pool = pool
        own = self.limiter
        self.limiter = CappedLimiter(
            pool.slots, own.cap, initial=own.limit, default_cooldown_s=own.default_cooldown_s,
            cut_window_s=own.cut_window_s, pause_for_retry_after=own.pause_for_retry_after,
        )  # fmt: skip
        self.budget = SharedBudget(pool.budget)
        self.keys = pool.keys

    async def catalogue_entry(self) -> dict[str, Any] | None:
        return self.pool.entries.get(self.remote_model)

    def set_spent(self, usd: float) -> None:
        """The run's past spend is already in the sweep's total (summed from the journal when
        the sweep started or resumed), except the calls a killed process left in flight, which
        the run counts only once it holds its lock: the difference is added."""
        extra = usd - self.pool.counted.get(self.model, 0.0)
        self.pool.counted[self.model] = usd
        if extra > 0:
            self.pool.budget.add(extra)
        self.budget = SharedBudget(self.pool.budget)
