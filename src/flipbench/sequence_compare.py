"""Two protocols' serial dependence compared at one p: ρ₁(a) − ρ₁(b) with a bootstrap interval.

The paper's two ways of asking for D flips — D tokens in one reply (`d-flips`) and one flip
per turn of a conversation (`chained-flips`) — are independent runs on the same p grid. Whether
the second flip reacts to the first is their lag-1 autocorrelation (`sequence_tests`); how much
more one protocol does it than the other is the difference of the two, whose interval must
hold away from independence too (an alternating model is the interesting case), where the
i.i.d. variance 1/N is wrong. Replies are the independent units, so each run's replies are
resampled with replacement and ρ₁ recomputed from per-reply sums (one matrix product per run);
the interval is the percentile interval of the differences. Its coverage is measured in
tests/test_sequence_tests.py. Pure numerics.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from flipbench.estimate import Estimate

__all__ = ["Lag1Difference", "lag1_difference"]

FloatArray = npt.NDArray[np.float64]

#: Below this share of usable replicates (ρ₁ defined in both runs) there is no interval.
MIN_USABLE = 0.9


class Lag1Difference(BaseModel):
    """ρ₁ of each run's replies and their difference a − b (None where not defined)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rho_a: float | None
    rho_b: float | None
    difference: Estimate | None
    replies_a: int
    replies_b: int
    method: str = "percentile bootstrap over replies"
    note: str = ""


def _reply_sums(replies: npt.ArrayLike) -> FloatArray:
    """Per reply: Σx, number of flips, Σ x_t·x_{t+1}, Σ (x_t + x_{t+1}), number of pairs."""
    x = np.asarray(replies)
    if x.ndim != 2 or (x.size and not np.isin(x, (0, 1)).all()):
        raise ValueError("replies must be an (n, D) array of 0/1 flips")
    x = x.astype(float)
    a, b = x[:, :-1], x[:, 1:]
    d = x.shape[1]
    ones = np.ones(len(x))
    return np.column_stack([x.sum(axis=1), d * ones, (a * b).sum(axis=1),
                            (a + b).sum(axis=1), max(d - 1, 0) * ones])  # fmt: skip


def _rho(sums: FloatArray) -> FloatArray:
    """ρ₁ from summed reply statistics (rows: replicates); NaN where undefined."""
    s1, n, p, q, pairs = (sums[..., i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = s1 / n
        cov = (p - m * q + pairs * m * m) / pairs
        rho = cov / (m * (1 - m))
    return np.where((pairs > 0) & (m > 0) & (m < 1), rho, np.nan)


def lag1_difference(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Lag1Difference:
    """ρ₁(a) − ρ₁(b) for two sets of replies (each an (n, D) 0/1 array; D may differ)."""
    sa, sb = _reply_sums(a), _reply_sums(b)
    rho_a, rho_b = float(_rho(sa.sum(axis=0))), float(_rho(sb.sum(axis=0)))
    out_a = None if math.isnan(rho_a) else rho_a
    out_b = None if math.isnan(rho_b) else rho_b

    def result(difference: Estimate | None, note: str = "") -> Lag1Difference:
        return Lag1Difference(rho_a=out_a, rho_b=out_b, difference=difference,
                              replies_a=len(sa), replies_b=len(sb), note=note)  # fmt: skip

    if out_a is None or out_b is None:
        why = "ρ₁ is not defined in a run (no pairs, or every flip the same)"
        return result(None, why)
    rng = np.random.default_rng(seed)
    reps = []
    for sums in (sa, sb):
        weights = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=n_boot)
        reps.append(_rho(weights @ sums))
    diff = reps[0] - reps[1]
    usable = diff[np.isfinite(diff)]
    if usable.size < MIN_USABLE * n_boot:
        note = f"only {usable.size} of {n_boot} resamples define ρ₁ in both runs"
        return result(None, note)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(usable, [tail, 1 - tail])
    return result(Estimate(rho_a - rho_b, float(lo), float(hi)))
