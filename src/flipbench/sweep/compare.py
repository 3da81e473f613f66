"""Two sweeps side by side (`flipbench compare SWEEP_A SWEEP_B`): the models both ranked, each
one's mean in either, the difference with an interval, and how far the two rankings agree.

A second sweep is the same models asked again (another day, another intervention, labels in
place of 0/1): what moved, and by more than noise? The difference of two independent
proportions gets Newcombe's hybrid score interval (MOVER from the two Wilson intervals the
rankings already hold), whose coverage is close to nominal down to small n and at 0 or 1,
where a Wald interval collapses. Sweeps of different experiments are refused unless forced:
their means are shares of different answers.
"""

from __future__ import annotations

import math

from pydantic import BaseModel
from scipy.stats import spearmanr

from flipbench.errors import FlipbenchError
from flipbench.sweep.ranking import ModelRank, SweepRanking

__all__ = ["ModelChange", "SweepComparison", "compare_sweeps"]


class ModelChange(BaseModel):
    """One model ranked in both sweeps: its means and the change b − a."""

    model: str
    mean_a: float
    mean_b: float
    bias_a: float
    bias_b: float
    change: float  # mean_b − mean_a
    change_low: float
    change_high: float
    beyond_noise: bool  # the interval excludes 0


class SweepComparison(BaseModel):
    """What `compare` prints for two sweeps (`--format json` writes this)."""

    sweep_a: str
    sweep_b: str
    experiment_a: str
    experiment_b: str
    shared: list[ModelChange]
    only_a: list[str]
    only_b: list[str]
    rank_correlation: float | None  # Spearman of the biases over the shared models


def _newcombe(a: ModelRank, b: ModelRank) -> tuple[float, float]:
    """MOVER interval of mean_b − mean_a from the two Wilson intervals."""
    change = b.mean - a.mean
    low = change - math.hypot(b.mean - b.mean_low, a.mean_high - a.mean)
    high = change + math.hypot(b.mean_high - b.mean, a.mean - a.mean_low)
    return low, high


def compare_sweeps(a: SweepRanking, b: SweepRanking, *, force: bool = False) -> SweepComparison:
    """The models both sweeps ranked, largest change first."""
    if a.experiment != b.experiment and not force:
        raise FlipbenchError(
            f"sweeps {a.sweep_id} ({a.experiment}) and {b.sweep_id} ({b.experiment}) ask"
            " different experiments: their means are shares of different answers (--force"
            " compares them anyway)"
        )
    first = {r.model: r for r in a.ranked}
    second = {r.model: r for r in b.ranked}
    shared = []
    for model in sorted(set(first) & set(second)):
        ra, rb = first[model], second[model]
        low, high = _newcombe(ra, rb)
        shared.append(ModelChange(
            model=model, mean_a=ra.mean, mean_b=rb.mean, bias_a=ra.bias, bias_b=rb.bias,
            change=rb.mean - ra.mean, change_low=low, change_high=high,
            beyond_noise=low > 0 or high < 0,
        ))  # fmt: skip
    shared.sort(key=lambda c: (-abs(c.change), c.model))
    rho = None
    if len(shared) >= 3:
        value = spearmanr([c.bias_a for c in shared], [c.bias_b for c in shared]).statistic
        rho = None if math.isnan(value) else float(value)
    return SweepComparison(
        sweep_a=a.sweep_id, sweep_b=b.sweep_id, experiment_a=a.experiment,
        experiment_b=b.experiment, shared=shared, only_a=sorted(set(first) - set(second)),
        only_b=sorted(set(second) - set(first)), rank_correlation=rho,
    )  # fmt: skip
