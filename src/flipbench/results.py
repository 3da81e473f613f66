"""From journal rows to numbers: per-condition rates with intervals, invalid shares, and S."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from flipbench.metrics import (
    bootstrap_step_likeness,
    exact_rate_interval,
    rate_summary,
    step_likeness,
)
from flipbench.store import Journal, RunRow
from flipbench.tasks.definition import ResolvedExperiment


@dataclass
class ConditionResult:
    """One grid point: the requested p, the observed (or exact) rate and how it was obtained."""

    condition: str
    p: float
    rate: float
    ci_low: float
    ci_high: float
    n_valid: int
    n_total: int
    k: int = 0
    coverage: float | None = None
    invalid: dict[str, int] = field(default_factory=dict)

    @property
    def invalid_share(self) -> float:
        return (self.n_total - self.n_valid) / self.n_total if self.n_total else float("nan")


@dataclass
class RunResults:
    """Everything `show` prints for a run."""

    run: RunRow
    experiment: ResolvedExperiment
    conditions: list[ConditionResult]
    s: float
    s_ci: tuple[float, float]
    cost_usd: float | None = None  # sum of the providers' usage.cost; None when none reported

    @property
    def n_requests(self) -> int:
        return sum(c.n_total for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: run identity, settings, per-condition rows and S."""
        rows = []
        for c in self.conditions:
            row = asdict(c)
            row["invalid_share"] = c.invalid_share
            rows.append(row)
        view: dict[str, Any] = strict_json(
            {
                "run_id": self.run.run_id,
                "experiment": self.run.experiment,
                "model": self.run.model,
                "mode": self.run.mode,
                "status": self.run.display_status,
                "created_at": self.run.created_at,
                "definition_hash": self.run.definition_hash,
                "config": self.run.config,
                "versions": self.run.versions,
                "conditions": rows,
                "S": {"value": self.s, "ci_low": self.s_ci[0], "ci_high": self.s_ci[1]},
                "cost_usd": self.cost_usd,
            }
        )
        return view


def strict_json(value: Any) -> Any:
    """Non-finite floats become null: strict JSON parsers (jq, browsers) reject NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def compute_results(journal: Journal, run_id: str) -> RunResults:
    """Read a run back from the journal and compute its rates, intervals and S."""
    run = journal.get_run(run_id)
    experiment = ResolvedExperiment(**run.definition)
    first = experiment.first
    exact = run.mode == "exact"
    answers: dict[str, list[str]] = {}
    totals: Counter[str] = Counter()
    invalid: dict[str, Counter[str]] = {}
    exact_rows: dict[str, Any] = {}
    costs: list[float] = []
    for row in journal.samples(run_id):
        key = row["condition"]
        totals[key] += 1
        if row["cost"] is not None:
            costs.append(row["cost"])
        if row["valid"]:
            if exact:
                exact_rows[key] = row
            else:
                answers.setdefault(key, []).append(row["answer"])
        else:
            invalid.setdefault(key, Counter())[row["invalid_category"] or "unknown"] += 1

    conditions = []
    for cond in experiment.conditions():
        key = cond.key
        bad = dict(invalid.get(key, {}))
        if exact:
            best = exact_rows.get(key)
            rate = json.loads(best["probs_json"])[first] if best is not None else float("nan")
            low, high = exact_rate_interval(rate)
            coverage = best["coverage"] if best is not None else None
            n_valid = int(best is not None)
            conditions.append(
                ConditionResult(
                    key, cond.p, rate, low, high, n_valid, totals[key], 0, coverage, bad
                )
            )
        else:
            got = answers.get(key, [])
            k = sum(a == first for a in got)
            rate, low, high = rate_summary(k, len(got))
            conditions.append(
                ConditionResult(key, cond.p, rate, low, high, len(got), totals[key], k, None, bad)
            )

    ps = [c.p for c in conditions]
    s = step_likeness(ps, [c.rate for c in conditions])
    if exact:
        s_ci = (s, s)
    else:
        usable = [c for c in conditions if c.n_valid > 0]
        s_ci = bootstrap_step_likeness(
            [c.p for c in usable], [c.k for c in usable], [c.n_valid for c in usable]
        )
    return RunResults(run, experiment, conditions, s, s_ci, math.fsum(costs) if costs else None)
