"""From journal rows to numbers: per-condition rates with intervals, invalid shares, and S."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from flipbench.analysis import ConditionData, analyse
from flipbench.metrics import exact_rate_interval, rate_summary
from flipbench.store import Journal, RunRow
from flipbench.tasks.definition import Condition, ResolvedExperiment


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
    value: str = ""  # the grid value as the prompt printed it

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
    metrics: dict[str, Any] = field(default_factory=dict)  # the experiment's own metrics
    lines: list[str] = field(default_factory=list)  # their one-line summaries, for `show`
    # Per condition: the valid answers (sampled) or the exact distribution, for scoring.
    raw: list[tuple[Condition, list[str], dict[str, float] | None]] = field(default_factory=list)

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
                "metrics": self.metrics,
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
    """Read a run back from the journal and compute its rates, intervals and every metric."""
    run = journal.get_run(run_id)
    experiment = ResolvedExperiment(**run.definition)
    exact = run.mode == "exact"
    conditions = experiment.conditions()
    data = {c.key: ConditionData(c) for c in conditions}
    totals: Counter[str] = Counter()
    invalid: dict[str, Counter[str]] = {}
    coverage: dict[str, float | None] = {}
    costs: list[float] = []
    for row in journal.samples(run_id):
        key = row["condition"]
        totals[key] += 1
        if row["cost"] is not None:
            costs.append(row["cost"])
        if key not in data:
            continue
        if not row["valid"]:
            invalid.setdefault(key, Counter())[row["invalid_category"] or "unknown"] += 1
        elif exact:
            data[key].probs = json.loads(row["probs_json"])
            coverage[key] = row["coverage"]
        else:
            data[key].answers.append(row["answer"])
            data[key].texts.append(row["content"] or "")

    analysis = analyse(experiment, list(data.values()))
    sequences = experiment.parser == "d-tokens" or experiment.followup is not None
    mean_rates = analysis.metrics.get("positions", {}).get("mean_rate", [])
    rows = []
    for i, cond in enumerate(conditions):
        d = data[cond.key]
        n_valid = (1 if d.probs is not None else 0) if exact else len(d.answers)
        k = 0
        if sequences:
            est = mean_rates[i] if i < len(mean_rates) else {}
            rate = _float(est.get("value"))
            low, high = _float(est.get("low")), _float(est.get("high"))
        elif exact:
            rate = d.probs.get(cond.first, math.nan) if d.probs is not None else math.nan
            low, high = exact_rate_interval(rate)
        elif cond.answers:
            k = sum(a == cond.first for a in d.answers)
            rate, low, high = rate_summary(k, len(d.answers))
        else:  # free-form answers (numbers): no rate of a first answer
            rate = low = high = math.nan
        result = ConditionResult(
            cond.key, cond.x, rate, low, high, n_valid, totals[cond.key], k,
            coverage.get(cond.key), dict(invalid.get(cond.key, {})), cond.value,
        )  # fmt: skip
        rows.append(result)
    return RunResults(
        run, experiment, rows, analysis.s, analysis.s_ci,
        math.fsum(costs) if costs else None, analysis.metrics, analysis.lines,
        [(c, data[c.key].answers, data[c.key].probs) for c in conditions],
    )  # fmt: skip


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan
