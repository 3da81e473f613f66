"""Calibration metrics for "did the model follow the requested probability?".

The central number is the step-likeness S of the Failure-to-Mix paper (Yang & Zhang,
arXiv 2511.14630): four times the area between the observed response curve r(p) and the
diagonal r = p. A perfectly calibrated model scores 0, a deterministic threshold at
p = 0.5 scores 1 and the fully inverted curve r = 1 - p scores 2. The algorithm below is
fixed on purpose (sort, constant extrapolation to p = 0 and p = 1, trapezoid over node
values of |r - p|) because it reproduces the S values printed in the paper.

Sampling noise is reported with Wilson intervals for single rates and, for S, with an
interval whose coverage is measured by simulation (``step_likeness_interval``: a basic
bootstrap widened by the bias S would have near calibration), beside the noise floor (the S
a perfectly calibrated model is expected to score at the same grid and n) and a
noise-corrected estimate. Inputs are always fractions in [0, 1]; percentages are rejected rather
than guessed at, since a silent /100 would hide a unit bug elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from flipbench.bootstrap import (
    bias_aware_interval,
    check_boot,
    check_confidence,
    generator,
    percentile_interval,
    redraw_binomial,
    toward_target,
)

__all__ = [
    "StepLikenessInterval",
    "check_unit",
    "exact_rate_interval",
    "noise_floor",
    "rate_summary",
    "step_likeness",
    "step_likeness_bounds",
    "step_likeness_interval",
    "trapezoid_area",
    "wilson_interval",
]

FloatArray = npt.NDArray[np.float64]

# Tolerance for "inside [0, 1]": lets through float noise such as 0.05 * 20, not percentages.
_UNIT_TOL = 1e-9


def _as_1d(x: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_unit(arr: FloatArray, name: str) -> None:
    """Reject finite values outside [0, 1]: they are almost surely percentages."""
    finite = arr[np.isfinite(arr)]
    if finite.size and (finite.min() < -_UNIT_TOL or finite.max() > 1 + _UNIT_TOL):
        raise ValueError(f"{name} must hold fractions in [0, 1] (not percentages)")


def step_likeness(p: ArrayLike, r: ArrayLike) -> float:
    """Step-likeness S of the response curve r(p); NaN when fewer than 2 usable points."""
    pa, ra = _as_1d(p, "p"), _as_1d(r, "r")
    if pa.shape != ra.shape:
        raise ValueError(f"p and r differ in length: {pa.size} vs {ra.size}")
    check_unit(pa, "p")
    check_unit(ra, "r")
    keep = np.isfinite(pa) & np.isfinite(ra)
    pa, ra = pa[keep], ra[keep]
    if pa.size < 2:
        return math.nan
    # Stable sort so that tied p values keep their input order (the result is deterministic).
    order = np.argsort(pa, kind="stable")
    xs: list[float] = [float(v) for v in pa[order]]
    ys: list[float] = [float(v) for v in ra[order]]
    # Constant extrapolation: the curve is taken to stay flat beyond the measured range.
    if xs[0] > 0.0:
        xs.insert(0, 0.0)
        ys.insert(0, ys[0])
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(ys[-1])
    dev = [abs(y - x) for x, y in zip(xs, ys, strict=True)]
    area = sum((xs[i + 1] - xs[i]) * (dev[i] + dev[i + 1]) / 2.0 for i in range(len(xs) - 1))
    return 4.0 * area


def step_likeness_rows(p: FloatArray, r: FloatArray) -> FloatArray:
    """S for every row of r (shape B x m) against one shared p (shape m), all at once.

    Same algorithm as ``step_likeness``; the caller guarantees finite values and m >= 2.
    Kept vectorised because the bootstrap evaluates S thousands of times.
    """
    order = np.argsort(p, kind="stable")
    xs = p[order]
    ys = r[:, order]
    if xs[0] > 0.0:
        xs = np.concatenate(([0.0], xs))
        ys = np.concatenate((ys[:, :1], ys), axis=1)
    if xs[-1] < 1.0:
        xs = np.concatenate((xs, [1.0]))
        ys = np.concatenate((ys, ys[:, -1:]), axis=1)
    dev = np.abs(ys - xs[np.newaxis, :])
    seg = np.diff(xs)[np.newaxis, :] * (dev[:, :-1] + dev[:, 1:]) / 2.0
    out: FloatArray = 4.0 * seg.sum(axis=1)
    return out


def trapezoid_rows(x: FloatArray, y: FloatArray, lo: float, hi: float) -> FloatArray:
    """Trapezoid area of every row of y (B x m) over one shared x (m), y flat beyond [x]."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ys = y[:, order]
    if xs[0] > lo:
        xs = np.concatenate(([lo], xs))
        ys = np.concatenate((ys[:, :1], ys), axis=1)
    if xs[-1] < hi:
        xs = np.concatenate((xs, [hi]))
        ys = np.concatenate((ys, ys[:, -1:]), axis=1)
    seg = np.diff(xs)[np.newaxis, :] * (ys[:, :-1] + ys[:, 1:]) / 2.0
    out: FloatArray = seg.sum(axis=1)
    return out


def trapezoid_area(x: ArrayLike, y: ArrayLike, lo: float = 0.0, hi: float = 1.0) -> float:
    """Trapezoid area of y(x) over [lo, hi], y held constant beyond the measured x range.

    The benchmark's Exp3 areas (on [0, 0.6]) need this; like S it is NaN with fewer than
    2 finite points, so one stray answer cannot pass for a whole curve.
    """
    xa, ya = _as_1d(x, "x"), _as_1d(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length: {xa.size} vs {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    if xa.size and (xa.min() < lo - _UNIT_TOL or xa.max() > hi + _UNIT_TOL):
        raise ValueError(f"x must lie in [{lo}, {hi}]")
    if xa.size < 2:
        return math.nan
    return float(trapezoid_rows(xa, ya[np.newaxis, :], lo, hi)[0])


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k/n; unlike the Wald interval it stays sane at k = 0 or n."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    check_confidence(confidence)
    if n == 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    phat = k / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2.0 * n)) / denom
    half = z / denom * math.sqrt(phat * (1.0 - phat) / n + z * z / (4.0 * n * n))
    # The bounds at k = 0 and k = n are exactly 0 and 1; set them so rounding cannot leak.
    lo = 0.0 if k == 0 else min(max(centre - half, 0.0), 1.0)
    hi = 1.0 if k == n else min(max(centre + half, 0.0), 1.0)
    return (lo, hi)


def rate_summary(k: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(rate, ci_low, ci_high) for k successes out of n; everything NaN when n == 0."""
    lo, hi = wilson_interval(k, n, confidence)
    rate = k / n if n > 0 else math.nan
    return (rate, lo, hi)


def exact_rate_interval(rate: float) -> tuple[float, float]:
    """(rate, rate): a rate read from exact probabilities has no sampling error."""
    return (rate, rate)


def _counts(
    p: ArrayLike, k: ArrayLike, n: ArrayLike
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Validated (p, k, n) of the usable conditions (finite p, n > 0)."""
    pa = _as_1d(p, "p")
    ka, na = _as_1d(k, "k"), _as_1d(n, "n")
    if not pa.shape == ka.shape == na.shape:
        raise ValueError(f"p, k, n differ in length: {pa.size}, {ka.size}, {na.size}")
    check_unit(pa, "p")
    if np.any((ka < 0) | (ka > na) | (ka != np.round(ka)) | (na != np.round(na))):
        raise ValueError("k and n must be integers with 0 <= k <= n")
    keep = np.isfinite(pa) & (na > 0)
    return pa[keep], ka[keep], na[keep].astype(np.int64)


@dataclass(frozen=True)
class StepLikenessInterval:
    """S of a sampled curve with everything that says how far noise moves it.

    ``low``/``high``: the bias-aware basic bootstrap (``bootstrap.bias_aware_interval``), the
    interval `show` reports; ``percentile``: the plain percentile interval of the same first
    replicates (the one reported before; it misses the truth near calibration).
    ``corrected``: S minus its bootstrap bias, floored at 0. ``noise_floor``: the S a perfectly
    calibrated model (r = p) is expected to score at this grid and these n (``noise_floor``).
    """

    value: float
    low: float
    high: float
    corrected: float
    noise_floor: float
    percentile: tuple[float, float]
    method: str = "bias-aware basic bootstrap"


def step_likeness_interval(
    p: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> StepLikenessInterval:
    """S of k[i] of n[i] at p[i], its interval (coverage measured), corrected value and floor.

    Two sets of n_boot binomial replicates (resampling a condition's n answers is drawing
    k* ~ Binomial(n, k/n)): from the observed rates (the first set, whose percentile interval is
    kept as ``percentile``), then from the rates nearest the diagonal that the
    data allow (each p clipped into its rate's 95 % Wilson interval, ``toward_target``).
    """
    check_boot(n_boot, confidence)
    rng = generator(seed)
    pa, ka, trials = _counts(p, k, n)
    if pa.size < 2:
        return StepLikenessInterval(*(math.nan,) * 5, (math.nan, math.nan))
    rates = ka / trials
    point = step_likeness(pa, rates)
    s_star = step_likeness_rows(pa, redraw_binomial(rng, trials, rates, n_boot))
    two = np.stack((1.0 - rates, rates), axis=1)
    near = toward_target(two, trials, np.stack((1.0 - pa, pa), axis=1))[:, 1]
    near_star = step_likeness_rows(pa, redraw_binomial(rng, trials, near, n_boot))
    lo, hi = bias_aware_interval(
        point, s_star, (step_likeness(pa, near), near_star), confidence, (0.0, math.inf)
    )
    corrected = max(2.0 * point - float(s_star.mean()), 0.0)
    return StepLikenessInterval(
        point, lo, hi, corrected, noise_floor(pa, trials), percentile_interval(s_star, confidence)
    )


def _nodes(p: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp], FloatArray]:
    """S's trapezoid as a weighted sum over nodes: (node x, the condition each node reads its
    rate from, node weight), the flat extensions to 0 and 1 included, so that
    S = Σ weight · |r[condition] − x|."""
    order = np.argsort(p, kind="stable")
    xs, idx = p[order], order
    if xs[0] > 0.0:
        xs, idx = np.concatenate(([0.0], xs)), np.concatenate((order[:1], idx))
    if xs[-1] < 1.0:
        xs, idx = np.concatenate((xs, [1.0])), np.concatenate((idx, order[-1:]))
    seg = np.diff(xs)
    weight = np.zeros(xs.size)
    weight[:-1] += 2.0 * seg  # 4 · seg / 2 to each end of a segment
    weight[1:] += 2.0 * seg
    return xs, idx, weight


def step_likeness_bounds(p: ArrayLike, low: ArrayLike, high: ArrayLike) -> tuple[float, float]:
    """The least and the most S of any curve with r[i] in [low[i], high[i]] at p[i].

    For censored exact rates (an API's top-k list hid an answer), which are known only to lie
    in bounds: S is a weighted sum over its trapezoid's nodes of |r − x|, and each condition's
    share of it is convex in its own rate, so its minimum lies at an end of the bounds or at
    one of its nodes' x, its maximum at an end. A point rate has low = high. Conditions with
    a non-finite p or bound are left out, as in S; NaN with fewer than 2 usable.
    """
    pa, lo, hi = _as_1d(p, "p"), _as_1d(low, "low"), _as_1d(high, "high")
    if not pa.shape == lo.shape == hi.shape:
        raise ValueError(f"p, low, high differ in length: {pa.size}, {lo.size}, {hi.size}")
    for arr, name in ((pa, "p"), (lo, "low"), (hi, "high")):
        check_unit(arr, name)
    keep = np.isfinite(pa) & np.isfinite(lo) & np.isfinite(hi)
    pa, lo, hi = pa[keep], lo[keep], hi[keep]
    if np.any(lo > hi):
        raise ValueError("every low must be <= its high")
    if pa.size < 2:
        return (math.nan, math.nan)
    xs, idx, weight = _nodes(pa)
    least = most = 0.0
    for i in range(pa.size):
        mine = idx == i
        x, w = xs[mine], weight[mine]
        candidates = np.concatenate(([lo[i], hi[i]], np.clip(x, lo[i], hi[i])))
        values = np.abs(candidates[:, np.newaxis] - x[np.newaxis, :]) @ w
        least += float(values.min())
        most += float(values[:2].max())
    return (least, most)


def noise_floor(p: ArrayLike, n: ArrayLike | None) -> float:
    """The expected S of a perfectly calibrated model (r = p) sampled n[i] times at p[i].

    Exact: S is a weighted sum of |r̂ − x| over its nodes, so E[S] is the same sum of
    E|k/n − x| with k ~ Binomial(n, p), summed over k. Sampling noise alone makes it about
    √(π / 2n) on a fine grid (0.12 at n = 100). A grid that stops short of 0 or 1 adds the
    corner area of the flat extension even for r = p (S(p, p)); exact rates (n None) have only
    that, no noise: 0 on a grid from 0 to 1. Conditions with n = 0 are left out, as in S; NaN
    with fewer than 2 usable.
    """
    from scipy.stats import binom  # only here: scipy is slow to import

    pa = _as_1d(p, "p")
    check_unit(pa, "p")
    na = np.full(pa.shape, 1.0) if n is None else _as_1d(n, "n")
    if na.shape != pa.shape or np.any((na < 0) | (na != np.round(na))):
        raise ValueError("n must hold one count >= 0 per p")
    keep = np.isfinite(pa) & (na > 0)
    pa, na = pa[keep], na[keep]
    if pa.size < 2:
        return math.nan
    if n is None:
        return step_likeness(pa, pa)
    xs, idx, weight = _nodes(pa)
    total = 0.0
    for x, i, w in zip(xs, idx, weight, strict=True):
        trials = int(na[i])
        grid = np.arange(trials + 1)
        total += w * float(binom.pmf(grid, trials, pa[i]) @ np.abs(grid / trials - x))
    return float(total)
