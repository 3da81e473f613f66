"""Ranking a sweep's models by bias, with intervals that say which differences are noise.

Per model: the mean of its valid draws (the share of each condition's `first` answer), the
requested p (the draws' average target: 0.5 for the seed's fair coin), the bias |mean − p|, a
95 % Wilson interval on the mean and the interval of the bias it implies, the valid share, the
cost and the median latency. At n = 50 a bias of 0.1 is within noise, so the ranking says so in
three ways: `unbiased_within_noise` when the mean's interval holds p; `ties_next` when a
model's bias interval overlaps the next one's (their order is not established); and tie groups:
in bias order, a group is led by the least biased model not yet grouped and holds every later
model whose bias interval reaches down to the leader's upper bound, i.e. every model the data
cannot tell from the leader. (Groups chained through overlapping neighbours would join models
of bias 0 and 0.5 by steps of noise; these do not.)

The bias interval is the image of the Wilson interval under m ↦ |m − p|, so it covers the true
bias whenever the Wilson interval covers the true mean (≥ its ~95 %; tests/test_sweep.py checks
this by simulation). Draws pooled over several conditions of different p vary less than one
binomial, so the pooled Wilson interval is then conservative.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from pydantic import BaseModel

from flipbench.metrics import wilson_interval
from flipbench.store import Journal
from flipbench.sweep.journal import SweepRow
from flipbench.tasks.definition import ResolvedExperiment

CONFIDENCE = 0.95


class ModelRank(BaseModel):
    """One ranked model."""

    rank: int
    model: str
    run_id: str
    state: str
    valid: int
    replies: int
    mean: float
    target: float
    bias: float
    mean_low: float
    mean_high: float
    bias_low: float
    bias_high: float
    valid_share: float
    cost: float
    latency_s: float | None
    group: int  # tie group: models the data cannot tell from the group's least biased one
    ties_next: bool  # the bias interval overlaps the next model's
    unbiased_within_noise: bool


class UnrankedModel(BaseModel):
    """A model with no valid draw: skipped (with the reason), failed, or not yet run."""

    model: str
    run_id: str
    state: str
    reason: str | None
    calls: int


class SweepRanking(BaseModel):
    """A sweep's ranking, least biased first (`show --format json` writes this)."""

    sweep_id: str
    experiment: str
    status: str
    message: str | None
    n: int
    max_cost: float | None
    spent: float
    confidence: float = CONFIDENCE
    ranked: list[ModelRank]
    unranked: list[UnrankedModel]

    def least(self, count: int = 20) -> list[ModelRank]:
        return self.ranked[:count]

    def most(self, count: int = 20) -> list[ModelRank]:
        return list(reversed(self.ranked[-count:]))


def bias_interval(low: float, high: float, target: float) -> tuple[float, float]:
    """The interval of |m − target| for m in [low, high]."""
    if low <= target <= high:
        return 0.0, max(target - low, high - target)
    ends = sorted((abs(low - target), abs(high - target)))
    return ends[0], ends[1]


def _targets(definition: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """Each condition's answer whose share is the mean, and its requested probability."""
    experiment = ResolvedExperiment(**definition)
    out = {}
    for c in experiment.conditions():
        target = (c.target or {}).get(c.first)
        out[c.key] = (c.first, target if target is not None else math.nan)
    return out


def _model_row(journal: Journal, model: str, run_id: str, state: str) -> dict[str, Any] | None:
    """The model's counts and statistics, or None when it has no valid draw."""
    run = journal.get_run(run_id)
    targets = _targets(run.definition)
    k = n = replies = 0
    expected, cost = 0.0, 0.0
    latencies = []
    columns = ("condition", "answer", "valid", "cost", "latency_s")
    for row in journal.samples(run_id, columns):
        replies += 1
        cost += row["cost"] if row["cost"] and row["cost"] > 0 else 0.0
        if row["latency_s"] is not None:
            latencies.append(row["latency_s"])
        if not row["valid"] or row["condition"] not in targets:
            continue
        first, p = targets[row["condition"]]
        n += 1
        k += row["answer"] == first
        expected += p
    if n == 0 or math.isnan(expected):
        return None
    target = expected / n
    low, high = wilson_interval(k, n, CONFIDENCE)
    b_low, b_high = bias_interval(low, high, target)
    return {
        "model": model, "run_id": run_id, "state": state, "valid": n, "replies": replies,
        "mean": k / n, "target": target, "bias": abs(k / n - target), "mean_low": low,
        "mean_high": high, "bias_low": b_low, "bias_high": b_high, "valid_share": n / replies,
        "cost": cost, "latency_s": statistics.median(latencies) if latencies else None,
        "unbiased_within_noise": low <= target <= high,
    }  # fmt: skip


def rank_sweep(journal: Journal, sweep: SweepRow) -> SweepRanking:
    """Read every model's run back and rank them, least biased first."""
    known = {r.run_id for r in journal.list_runs()}
    rows: list[dict[str, Any]] = []
    unranked: list[UnrankedModel] = []
    spent = 0.0
    for m in sweep.models:
        row = None
        calls = 0
        if m.run_id in known:
            spent += journal.spent(m.run_id)
            row = _model_row(journal, m.model, m.run_id, m.state)
            calls = sum(c[1] for c in journal.condition_counts(m.run_id).values())
        if row is None:
            unranked.append(UnrankedModel(
                model=m.model, run_id=m.run_id, state=m.state, reason=m.reason, calls=calls,
            ))  # fmt: skip
        else:
            rows.append(row)
    rows.sort(key=lambda r: (r["bias"], r["bias_high"], r["model"]))
    ranked = []
    group, leader_high = 0, -1.0
    for i, row in enumerate(rows):
        if row["bias_low"] > leader_high:  # distinguishable from the leader: a new group
            group, leader_high = group + 1, row["bias_high"]
        ties = i + 1 < len(rows) and rows[i + 1]["bias_low"] <= row["bias_high"]
        ranked.append(ModelRank(rank=i + 1, group=group, ties_next=ties, **row))
    return SweepRanking(
        sweep_id=sweep.sweep_id, experiment=sweep.experiment, status=sweep.status,
        message=sweep.message, n=sweep.n, max_cost=sweep.max_cost, spent=spent,
        ranked=ranked, unranked=unranked,
    )  # fmt: skip
