"""The plan of a sweep, printed before any call: models × conditions × N and a cost range.

Each model's range is `flipbench.plan.Plan`'s (the same estimate every paid run prints: prompt
tokens from characters, 1 to max_tokens completion tokens per call at catalogue prices); the
sweep's is their sum, with the models the catalogue gives no price for counted apart, since
their cost is unknown, not zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from flipbench.plan import Plan
from flipbench.providers.base import estimate_request_tokens
from flipbench.sweep.catalogue import CatalogueModel
from flipbench.tasks.definition import ResolvedExperiment


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will ask and may cost, before anything is sent."""

    models: int
    conditions: int
    n: int
    calls: int  # every model, every reply valid
    max_calls: int  # with the retries of invalid replies
    cost: tuple[float, float]  # over the models with catalogue prices
    unpriced: int  # models the catalogue gives no price for
    max_cost: float | None

    def lines(self) -> list[str]:
        head = (
            f"plan: {self.models} models × {self.conditions} condition(s) × N={self.n}"
            f" = {self.calls:,} calls (at most {self.max_calls:,} with retries of invalid"
            " replies)"
        )
        low, high = self.cost
        cost = f"estimated cost ${low:.4g}–${high:.4g} (catalogue prices, 1 to max_tokens"
        cost += " completion tokens per call)"
        if self.unpriced:
            cost += f"; {self.unpriced} model(s) have no price in the catalogue: not counted"
        cap = (
            f"budget: --max-cost ${self.max_cost:g} for the whole sweep"
            if self.max_cost is not None
            else "budget: none (--max-cost sets one for the whole sweep)"
        )
        return [head, cost, cap]


def plan_sweep(
    models: list[CatalogueModel],
    experiment: ResolvedExperiment,
    max_tokens: int,
    max_cost: float | None,
    attempts_factor: float,
) -> SweepPlan:
    """The plan of `models` on `experiment` at `max_tokens` per reply (the API default when
    the experiment's is smaller, as a run would send)."""
    conditions = experiment.conditions()
    per_model = len(conditions) * experiment.n
    most = int(per_model * attempts_factor)
    prompt = estimate_request_tokens({"messages": conditions[0].messages}) if conditions else 0
    low = high = 0.0
    unpriced = 0
    for model in models:
        plan = Plan(len(conditions), per_model, most, prompt, max_tokens, model.pricing)
        cost = plan.cost_range()
        if cost is None:
            unpriced += 1
            continue
        low, high = low + cost[0], high + cost[1]
    return SweepPlan(
        models=len(models), conditions=len(conditions), n=experiment.n,
        calls=per_model * len(models), max_calls=most * len(models), cost=(low, high),
        unpriced=unpriced, max_cost=max_cost,
    )  # fmt: skip
