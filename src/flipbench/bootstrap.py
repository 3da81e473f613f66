"""The one bootstrap behind every interval built from several rates.

Every statistic in flipbench resamples the same way: a condition's n valid answers drawn
with replacement. That is a multinomial draw from the observed shares (binomial for two
categories, one cell per distinct reply for whole replies), so all B replicates come from
one generator call instead of a Python loop, and the statistic is then evaluated on the
whole (B x ...) array at once. Keeping the draws here, in one place, is what lets the
figures, the analyses and the 100-point benchmark report intervals that mean the same
thing, and keeps the call order to the generator (hence every number) fixed per seed.
Intervals are percentile intervals of the replicates, except where noise biases the statistic
(S, the benchmark's scores): there ``bias_aware_interval`` also redraws from the model nearest
calibration that the data allow (``toward_target``). A deviation of one distribution (TV, KL,
an Exp3 area, a bias over a few conditions) takes the hull of that and the percentile interval
(``hull_interval``), with the nearest model taken per share (``nearest_marginals``).
Two closed-form intervals sit beside the bootstrap where it measurably misses: a linear
combination of rates (the least-squares slope, ``linear_rate_interval``), and the MOVER bounds
of one (``mover_bounds``) that the direction score and the semantic bias invert tests with.

Pure numpy: nothing here knows about experiments, cells or the journal.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "bias_aware_interval",
    "check_boot",
    "check_confidence",
    "generator",
    "hull_interval",
    "linear_rate_interval",
    "mover_bounds",
    "multinomial_counts",
    "nearest_marginals",
    "percentile_interval",
    "redraw_binomial",
    "redraw_shares",
    "replicate_interval",
    "resample_row_means",
    "toward_target",
    "wilson_bounds",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def check_confidence(confidence: float) -> None:
    """Reject a confidence outside (0, 1): 95 passed for 0.95 would make no interval at all."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def check_boot(n_boot: int, confidence: float) -> None:
    """Validate the bootstrap settings up front, before any work (and any draw) is done."""
    check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def generator(seed: int | np.integer[Any]) -> np.random.Generator:
    """The generator of one bootstrap; an explicit integer seed keeps intervals reproducible.

    ``None`` would silently draw from OS entropy (a different interval on every call), so it
    is refused like any other non-integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return np.random.default_rng(seed)


def multinomial_counts(
    rng: np.random.Generator, n: int | IntArray, shares: FloatArray, n_boot: int
) -> IntArray:
    """n_boot redraws of n answers from ``shares``: counts of shape (n_boot, *n.shape, K).

    ``n`` may be one count (shares of shape K) or one count per condition (shares m x K),
    in which case every condition is redrawn independently in the same single call.
    """
    counts: IntArray = rng.multinomial(n, shares, size=(n_boot, *np.shape(n)))
    return counts


def redraw_shares(
    rng: np.random.Generator, n: int | IntArray, shares: FloatArray, n_boot: int
) -> FloatArray:
    """``multinomial_counts`` as shares: each replicate's counts divided by its n."""
    counts = multinomial_counts(rng, n, shares, n_boot)
    out: FloatArray = counts / np.asarray(n)[..., np.newaxis]
    return out


def redraw_binomial(
    rng: np.random.Generator, n: int | IntArray, rate: float | FloatArray, n_boot: int
) -> FloatArray:
    """n_boot redraws of the rate k / n of one category, shape (n_boot, *n.shape).

    The two-category case of ``redraw_shares``, drawn as Binomial(n, rate) because only
    one share is needed.
    """
    out: FloatArray = rng.binomial(n, rate, size=(n_boot, *np.shape(n))) / n
    return out


def resample_row_means(rng: np.random.Generator, rows: IntArray, n_boot: int) -> FloatArray:
    """Column means of the rows resampled with replacement, n_boot times: (n_boot x D).

    Rows are whole replies (e.g. D flips), resampled as units because the values within a
    reply are not independent. Drawing n rows with replacement is a multinomial over the
    distinct rows, so the cost is one draw over the distinct patterns and one product.
    """
    n = rows.shape[0]
    patterns, counts = np.unique(rows, axis=0, return_counts=True)
    weights = multinomial_counts(rng, n, counts / n, n_boot)
    out: FloatArray = weights @ patterns / n
    return out


def percentile_interval(samples: FloatArray, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the replicates (linear interpolation).

    With any infinite replicate (e.g. a KL divergence where a redraw puts mass on an
    impossible answer) interpolation would produce inf - inf = NaN, so the interval then
    uses order statistics (no interpolation) and stays meaningful.
    """
    alpha = 1.0 - confidence
    qs = [alpha / 2.0, 1.0 - alpha / 2.0]
    if np.all(np.isfinite(samples)):
        lo, hi = np.quantile(samples, qs)
    else:
        lo, hi = np.quantile(samples, qs, method="inverted_cdf")
    return (float(lo), float(hi))


def replicate_interval(samples: FloatArray, point: float, confidence: float) -> tuple[float, float]:
    """Interval of one statistic from its replicates and its point estimate.

    No spread (every replicate equal, e.g. only exact inputs) gives the point itself, bit
    for bit: sums over a batch of B may round differently from a batch of 1, and an exact
    value must not get a sliver of an interval. A replicate that is undefined (NaN) makes
    the interval undefined rather than quietly shrinking the sample.
    """
    if samples.size and np.all(samples == samples[0]):
        return (point, point)
    if samples.size == 0 or np.isnan(samples).any():
        return (math.nan, math.nan)
    return percentile_interval(samples, confidence)


def wilson_bounds(
    shares: FloatArray, n: IntArray, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score bounds of every share (any shape) with its count n (broadcast), at once.

    The vectorised twin of ``metrics.wilson_interval``: exactly 0 and 1 at shares of 0 and 1.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    nn = np.asarray(n, dtype=np.float64)
    denom = 1.0 + z * z / nn
    centre = (shares + z * z / (2.0 * nn)) / denom
    spread = np.clip(shares * (1.0 - shares), 0.0, None) / nn + z * z / (4.0 * nn * nn)
    half = z / denom * np.sqrt(spread)
    lo = np.where(shares <= 0.0, 0.0, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(shares >= 1.0, 1.0, np.clip(centre + half, 0.0, 1.0))
    return lo, hi


def toward_target(
    shares: FloatArray, n: IntArray, target: FloatArray, confidence: float = 0.95
) -> FloatArray:
    """The distribution nearest the target that the data still allow, per condition.

    ``shares`` and ``target`` are (m x K) distributions, ``n`` the m counts. Each row moves on
    the straight line from the observed shares towards its target as far as every share stays
    within its own Wilson interval (all the way when the target lies inside them). For two
    categories that is the target clipped into the rate's Wilson interval. A row stays a
    distribution (a convex combination of two). It is the model as close to calibrated as its
    sampling noise allows, whose bias ``bias_aware_interval`` takes into account.
    """
    lo, hi = wilson_bounds(shares, n[:, np.newaxis], confidence)
    step = target - shares
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(step > 0, (hi - shares) / step, np.inf)
        room = np.where(step < 0, (lo - shares) / step, up)
    lam = np.clip(np.nan_to_num(room.min(axis=1), nan=0.0), 0.0, 1.0)
    out: FloatArray = shares + lam[:, np.newaxis] * step
    return out


def bias_aware_interval(
    point: float,
    samples: FloatArray,
    near: tuple[float, FloatArray],
    confidence: float,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[float, float]:
    """A bootstrap interval that allows for the bias noise gives the statistic; clipped to bounds.

    ``samples`` are the replicates redrawn from the observed distributions (the bias there is
    b = their mean − point); ``near`` is (the statistic, its replicates) at the model nearest
    calibration that the data allow (``toward_target``; bias b̃ = mean − statistic). A
    statistic built from |rate − target| (S, an area, a score) is biased by noise, most where
    the model is calibrated, and the ordinary bootstrap sees only part of that bias (which is
    why its percentile interval misses calibrated models), and none of it far from
    calibration. So the truth's bias is taken to lie anywhere between 0 and the bootstrap's
    b and b̃: with B = {0, b, b̃}, m the mean and q_lo, q_hi the percentiles of ``samples``,

        [point − max B − (q_hi − m),  point − min B − (q_lo − m)],

    which always contains the point. Its coverage is measured by simulation in
    tests/test_coverage.py (docs/experiments.md). No noise at all (only exact inputs) gives
    the point itself; an undefined replicate, an undefined interval.
    """
    near_point, near_samples = near
    finite = math.isfinite(point) and math.isfinite(near_point)
    if not (finite and samples.size and near_samples.size):
        return (math.nan, math.nan)
    if not (np.isfinite(samples).all() and np.isfinite(near_samples).all()):
        return (math.nan, math.nan)
    if np.all(samples == samples[0]) and np.all(near_samples == near_samples[0]):
        return (point, point)  # sums over a batch may round differently from the point's
    mean = float(samples.mean())
    bias, near_bias = mean - point, float(near_samples.mean()) - near_point
    q_lo, q_hi = percentile_interval(samples, confidence)
    lo = point - max(0.0, bias, near_bias) - (q_hi - mean)
    hi = point - min(0.0, bias, near_bias) - (q_lo - mean)
    return (min(max(lo, bounds[0]), bounds[1]), max(min(hi, bounds[1]), bounds[0]))


def nearest_marginals(
    shares: FloatArray, n: int | IntArray, target: FloatArray, confidence: float = 0.95
) -> FloatArray:
    """Every share moved to its target as far as its own Wilson interval allows (any shape).

    Unlike ``toward_target`` the shares move independently, so the result need not sum to 1:
    it is for statistics whose expectation depends only on each share's (binomial) marginal,
    such as TV = ½ Σ |share − target| or KL = Σ share · log(share / target). A share that
    can reach its target sits on it, where noise biases |share − target| most; on the line
    of ``toward_target`` one far share would hold every other share where it was observed.
    Redraw it with ``redraw_binomial`` per share.
    """
    lo, hi = wilson_bounds(shares, np.asarray(n), confidence)
    out: FloatArray = np.clip(target, lo, hi)
    return out


def hull_interval(
    point: float,
    samples: FloatArray,
    near: tuple[float, FloatArray],
    confidence: float,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[float, float]:
    """The smallest interval holding both ``bias_aware_interval`` and the percentile interval.

    For a deviation of few shares from their targets (TV and KL of one answer distribution, an
    Exp3 area, a bias over a few conditions) neither covers alone: near the target the
    percentile interval lies above the truth, and a little way off it (a truth two standard
    errors from the target) the basic bootstrap inside ``bias_aware_interval`` mirrors the
    replicates' fold at the target and its upper end falls short. Each misses on its own side,
    so their hull covers (measured in tests/test_coverage.py). Undefined as either is.
    """
    lo, hi = bias_aware_interval(point, samples, near, confidence, bounds)
    if math.isnan(lo) or math.isnan(hi) or lo == hi == point:
        return (lo, hi)
    p_lo, p_hi = percentile_interval(samples, confidence)
    return (max(min(lo, p_lo), bounds[0]), min(max(hi, p_hi), bounds[1]))


def _cell_bounds(
    rates: FloatArray, n: IntArray, confidence: float
) -> tuple[FloatArray, FloatArray]:
    """Wilson bounds of sampled rates (n > 0); an exact rate (n < 0) is its own bounds."""
    sampled = n > 0
    lo, hi = wilson_bounds(rates, np.where(sampled, n, 1), confidence)
    return np.where(sampled, lo, rates), np.where(sampled, hi, rates)


def mover_bounds(
    rates: FloatArray, n: IntArray, weights: FloatArray, confidence: float
) -> tuple[FloatArray, FloatArray]:
    """Bounds of the linear combinations ``weights @ rates`` of independent rates (MOVER).

    ``rates`` and ``n`` hold m conditions (n < 0: exact, no error), ``weights`` is (q x m).
    Newcombe's method of variance estimates recovery: each rate's distance to its own Wilson
    bound, weighted, added in quadrature, on each side separately; for the difference of two
    rates that is Newcombe's interval. Unlike a Wald interval it stays sane at rates of 0 or 1
    (a Wilson bound is never the rate itself there), which is where game grids start and end.
    """
    lo, hi = _cell_bounds(rates, n, confidence)
    point = weights @ rates
    w_lo, w_hi = weights * lo, weights * hi
    w_r = weights * rates
    down = np.sqrt(np.sum((w_r - np.minimum(w_lo, w_hi)) ** 2, axis=-1))
    up = np.sqrt(np.sum((np.maximum(w_lo, w_hi) - w_r) ** 2, axis=-1))
    return point - down, point + up


def linear_rate_interval(
    point: float, rates: FloatArray, n: IntArray, weights: FloatArray, confidence: float
) -> tuple[float, float]:
    """Wald interval of ``point`` = weights · rates for independent rates (n < 0: exact).

    The percentile bootstrap of such a statistic (the least-squares slope of a game) covers
    only 0.91-0.93 at n = 100: a rate observed at 0 or 1, common at the 1 % and 99 % ends of
    a game grid that also carry the slope's largest weights, is redrawn without any spread.
    The variance here takes each rate as (k + 1/2) / (n + 1) (Jeffreys' prior mean), which is
    never 0; its coverage, measured in tests/test_coverage.py (and over 20,000 simulated runs
    per game and model, docs/benchmark.md), is 0.944-0.966. Exact inputs only: the point.
    """
    sampled = n > 0
    trials = np.where(sampled, n, 1).astype(np.float64)
    shrunk = (rates * trials + 0.5) / (trials + 1.0)
    variance = np.where(sampled, shrunk * (1.0 - shrunk) / trials, 0.0)
    spread = float(np.sqrt(np.sum(weights**2 * variance)))
    if not (math.isfinite(point) and math.isfinite(spread)):
        return (math.nan, math.nan)
    half = NormalDist().inv_cdf(0.5 + confidence / 2.0) * spread
    return (point - half, point + half) if half > 0.0 else (point, point)
