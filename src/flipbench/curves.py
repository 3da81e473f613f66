"""Response curves r(x) beyond one rate per prompt: flip positions, word order, games.

D flips in one reply give one curve r_j(p) per position j (Fig. 2-3): S_j, S of the mean
curve, and S of the running mean over the first J positions (Fig. 3c). Word pairs (Exp 5)
separate a position bias (the first-listed word wins) from a semantic bias (the "red" word
wins whatever its place). Games (Exp 4) are plain curves r(x) at the optimal x.

S always comes from ``flipbench.metrics.step_likeness``; intervals are Wilson for rates and
percentile bootstraps (``flipbench.bootstrap``) for everything built from several rates.
Results share the strict JSON ``to_dict()`` and ``Estimate`` of ``flipbench.estimate``.
Single-token inputs take ``n=None`` to mean exact probabilities (point intervals).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from flipbench.bootstrap import (
    bias_aware_interval,
    check_boot,
    generator,
    percentile_interval,
    redraw_binomial,
    resample_row_means,
)
from flipbench.distfit import binary_replies
from flipbench.estimate import Estimate, FitResult
from flipbench.metrics import (
    check_unit,
    noise_floor,
    rate_summary,
    step_likeness,
    step_likeness_interval,
    step_likeness_rows,
)

__all__ = [
    "PairBias",
    "PositionCurves",
    "ResponseCurve",
    "WordBias",
    "WordCondition",
    "position_curves",
    "response_curve",
    "step_likeness_difference",
    "unseen_reply_bounds",
    "word_bias",
]

FloatArray = npt.NDArray[np.float64]

ORDERS = ("forward", "reverse")  # forward: the red word is listed first


# --- D flips in one reply ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PositionCurves(FitResult):
    """Per-position curves of D flips per reply, with S per position, of the mean, running.

    ``rates[i][j]``: r_{j+1} at ``p[i]`` (Wilson). ``mean_rate[i]``: Mean(r) at ``p[i]``;
    its interval is bootstrapped over replies because flips in one reply are not
    independent (Wilson on n * D flips would pretend they were). ``s_running[J - 1]``: S of
    the mean of r_1..r_J. S intervals: replies resampled within each p, and the interval is
    ``bootstrap.bias_aware_interval`` with the nearest-calibrated curve made by moving each
    rate towards p within its replicates' 95 % range and carrying their noise along (a
    translation; single rates redraw instead). ``s_mean_corrected``: S of Mean(r) minus its
    bootstrap bias (floored at 0); ``s_mean_noise_floor``: the S of Mean(r) a calibrated model
    of independent flips is expected to score (n·D flips per p, ``metrics.noise_floor``).
    A p with no replies stays in the lists with NaN rates and is left out of S.
    """

    p: list[float]
    n: list[int]
    flips: int
    rates: list[list[Estimate]]
    mean_rate: list[Estimate]
    s_position: list[Estimate]
    s_mean: Estimate
    s_running: list[Estimate]
    s_mean_corrected: float = math.nan
    s_mean_noise_floor: float = math.nan


def _s_columns(p: FloatArray, curves: FloatArray) -> list[float]:
    """S of every column of curves (m points x K curves), via the one S definition."""
    return [step_likeness(p, curves[:, j]) for j in range(curves.shape[1])]


def unseen_reply_bounds(mean: float, n: int, confidence: float) -> tuple[float, float]:
    """Mean(r) bounds when all n replies had the same share of "1" (a bootstrap collapses to a
    point there, which would claim certainty n replies cannot give).

    Replies unlike those seen have a total probability of at most u = 1 − (α/2)^(1/n) (the
    Clopper–Pearson bound for 0 of n); at worst they are all "0"s or all "1"s, so the mean lies
    in [m − u·m, m + u·(1 − m)].
    """
    u = 1.0 - ((1.0 - confidence) / 2.0) ** (1.0 / n)
    return (mean - u * mean, mean + u * (1.0 - mean))


def position_curves(
    replies_by_p: Mapping[float, ArrayLike],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PositionCurves:
    """Rates per position and S of each position, of Mean(r) and of running means.

    Bootstrap: each p's replies are resampled as whole replies (``resample_row_means``:
    one multinomial draw over its distinct reply patterns and one matrix product); all S
    replicates then come from one vectorised call.
    """
    check_boot(n_boot, confidence)
    rng = generator(seed)
    keys = sorted(replies_by_p, key=float)
    ps = np.array([float(k) for k in keys], dtype=np.float64)
    check_unit(ps, "p")
    arrays = [binary_replies(replies_by_p[k]) for k in keys]
    if not arrays or len({a.shape[1] for a in arrays}) != 1:
        raise ValueError("need at least one p and the same number of flips D at every p")
    flips = arrays[0].shape[1]
    ns = [a.shape[0] for a in arrays]
    rates = [[Estimate(*rate_summary(int(k), n, confidence)) for k in a.sum(axis=0)]
             for a, n in zip(arrays, ns, strict=True)]  # fmt: skip
    r = np.array([[e.value for e in row] for row in rates], dtype=np.float64).reshape(-1, flips)
    running = np.cumsum(r, axis=1) / np.arange(1, flips + 1)
    used = [i for i, n in enumerate(ns) if n > 0]
    boot = np.empty((n_boot, len(used), flips))
    for col, i in enumerate(used):
        boot[:, col, :] = resample_row_means(rng, arrays[i], n_boot)
    mean_ci = [
        percentile_interval(boot[:, col, :].mean(axis=1), confidence) for col in range(len(used))
    ]
    mean_rate = [Estimate(math.nan, math.nan, math.nan) for _ in keys]
    for col, i in enumerate(used):
        m, (lo, hi) = float(r[i].mean()), mean_ci[col]
        if lo == hi:  # every reply had the same share of "1": resampling cannot move it
            lo, hi = unseen_reply_bounds(m, ns[i], confidence)
        mean_rate[i] = Estimate(m, lo, hi)
    # Curves to score: D positions, the mean, then D running means (K = 2D + 1 of them).
    point = _s_columns(ps, np.hstack([r, r.mean(axis=1, keepdims=True), running]))
    curves = np.concatenate(
        [boot, boot.mean(axis=2, keepdims=True), np.cumsum(boot, axis=2) / np.arange(1, flips + 1)],
        axis=2,
    )
    n_curves = curves.shape[2]
    corrected = math.nan
    if len(used) >= 2:
        s_star, near = _s_replicates(ps[used], curves, r[used], confidence)
        cis = [
            bias_aware_interval(point[j], s_star[:, j], (near[0][j], near[1][:, j]),
                                confidence, (0.0, math.inf))
            for j in range(n_curves)
        ]  # fmt: skip
        corrected = max(2.0 * point[flips] - float(s_star[:, flips].mean()), 0.0)
    else:
        cis = [(math.nan, math.nan)] * n_curves
    s_all = [Estimate(v, *ci) for v, ci in zip(point, cis, strict=True)]
    floor = noise_floor(ps, [n * flips for n in ns])
    return PositionCurves(
        ps.tolist(), ns, flips, rates, mean_rate, s_all[:flips], s_all[flips],
        s_all[flips + 1 :], corrected, floor,
    )  # fmt: skip


def _s_replicates(
    p: FloatArray, curves: FloatArray, r: FloatArray, confidence: float
) -> tuple[FloatArray, tuple[list[float], FloatArray]]:
    """S of every replicate of every curve (B x K), and (S, replicates) of the curves moved
    towards the diagonal: each rate goes towards p as far as its replicates' range allows,
    its replicates shifted with it (clipped to [0, 1]). curves: B x m x K; r: m x D."""
    m, n_curves = curves.shape[1], curves.shape[2]
    flips = r.shape[1]
    running = np.cumsum(r, axis=1) / np.arange(1, flips + 1)
    rates = np.hstack([r, r.mean(axis=1, keepdims=True), running])
    lo = np.quantile(curves, (1 - confidence) / 2, axis=0)
    hi = np.quantile(curves, (1 + confidence) / 2, axis=0)
    moved = np.clip(p[:, np.newaxis], lo, hi)
    shifted = np.clip(curves + (moved - rates)[np.newaxis], 0.0, 1.0)

    def s_of(reps: FloatArray) -> FloatArray:
        rows = reps.transpose(0, 2, 1).reshape(-1, m)
        out: FloatArray = step_likeness_rows(p, rows).reshape(reps.shape[0], n_curves)
        return out

    near_point = [step_likeness(p, moved[:, j]) for j in range(n_curves)]
    return s_of(curves), (near_point, s_of(shifted))


# --- single-token curves: games and word order ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResponseCurve(FitResult):
    """r(x) of the first option at the optimal probability x, sorted by x, with S.

    S extends the curve as a constant to x = 0 and 1 (``step_likeness``); its interval,
    noise-corrected value and noise floor are ``step_likeness_interval``'s (``s_method`` says
    which interval). ``n`` is None for exact probabilities (point intervals; the floor is then
    S(x, x), 0 on a grid from 0 to 1).
    """

    x: list[float]
    n: list[int] | None
    rates: list[Estimate]
    s: Estimate
    s_corrected: float = math.nan
    s_noise_floor: float = math.nan
    s_method: str = "exact"


def _rates(
    k: FloatArray, n: FloatArray | None, confidence: float
) -> tuple[list[Estimate], FloatArray]:
    """Wilson rates of k of n, or exact rates (points) when n is None."""
    if n is None:
        check_unit(k, "exact rates")
        return [Estimate.point(float(v)) for v in k], k
    if k.shape != n.shape or np.any((k < 0) | (k > n) | (k != np.round(k)) | (n != np.round(n))):
        raise ValueError("k and n must be integers with 0 <= k <= n, one per condition")
    est = [Estimate(*rate_summary(int(a), int(b), confidence)) for a, b in zip(k, n, strict=True)]
    return est, np.array([e.value for e in est], dtype=np.float64)


def response_curve(
    x: ArrayLike,
    k: ArrayLike,
    n: ArrayLike | None = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ResponseCurve:
    """Curve r(x) = k / n with Wilson intervals and S; with n=None, k are exact rates."""
    check_boot(n_boot, confidence)
    xa = np.asarray(x, dtype=np.float64)
    ka = np.asarray(k, dtype=np.float64)
    if xa.ndim != 1 or ka.shape != xa.shape:
        raise ValueError(f"x and k must be 1-D of equal length, got {xa.shape} and {ka.shape}")
    check_unit(xa, "x")
    order = np.argsort(xa, kind="stable")
    xa, ka = xa[order], ka[order]
    na = None if n is None else np.asarray(n, dtype=np.float64)[order]
    rates, r = _rates(ka, na, confidence)
    s = step_likeness(xa, r)
    if na is None:
        floor = noise_floor(xa[np.isfinite(r)], None)  # no noise; only a short grid's corners
        return ResponseCurve(xa.tolist(), None, rates, Estimate.point(s), s, floor)
    si = step_likeness_interval(xa, ka, na, n_boot=n_boot, confidence=confidence, seed=seed)
    return ResponseCurve(
        xa.tolist(), [int(v) for v in na], rates, Estimate(s, si.low, si.high), si.corrected,
        si.noise_floor, si.method,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class WordCondition(FitResult):
    """One (pair, order): share of answers naming the first-listed word, and share - 0.5."""

    pair: str
    order: str
    n: int | None
    first_share: Estimate
    position_bias: Estimate


@dataclasses.dataclass(frozen=True)
class PairBias(FitResult):
    """Red-word share averaged over both orders (position cancels); semantic bias = it - 0.5.

    Interval: MOVER (Newcombe) from the two Wilson intervals, valid for unequal n and
    sane at shares of 0 or 1, where a bootstrap collapses to a point.
    """

    pair: str
    red_share: Estimate
    semantic_bias: Estimate


@dataclasses.dataclass(frozen=True)
class WordBias(FitResult):
    """Exp 5: every condition, every pair with both orders, and mean |r_first - 0.5|.

    ``mean_abs_position_bias`` is bootstrapped (binomial redraws per condition); note that
    |.| makes it biased upwards for small n: a fair model scores about 0.04 at n = 100.
    """

    conditions: list[WordCondition]
    pairs: list[PairBias]
    mean_abs_position_bias: Estimate


def _shift(e: Estimate, scale: float, offset: float) -> Estimate:
    lo, hi = sorted((scale * e.low + offset, scale * e.high + offset))
    return Estimate(scale * e.value + offset, lo, hi)


def word_bias(
    counts: Mapping[tuple[str, str], tuple[float, int | None]],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> WordBias:
    """Position and semantic bias from {(pair, "forward"|"reverse"): (k_first, n)}.

    ``k_first`` answers of ``n`` valid ones name the first-listed word; n=None means
    ``k_first`` is the exact probability of the first-listed word. In "forward" order the
    red word is listed first, so its share is r_first there and 1 - r_first in "reverse".
    """
    check_boot(n_boot, confidence)
    rng = generator(seed)
    conds: list[WordCondition] = []
    for (pair, order), (k, n) in sorted(counts.items()):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        na = None if n is None else np.array([n], dtype=np.float64)
        first = _rates(np.array([k], dtype=np.float64), na, confidence)[0][0]
        conds.append(WordCondition(pair, order, n, first, _shift(first, 1.0, -0.5)))
    usable = [c for c in conds if not math.isnan(c.first_share.value)]
    draws = np.array(
        [redraw_binomial(rng, c.n, c.first_share.value, n_boot) if c.n is not None
         else np.full(n_boot, c.first_share.value) for c in usable]
    )  # fmt: skip
    mean_abs = float(np.mean([abs(c.position_bias.value) for c in usable])) if usable else math.nan
    ci = (
        percentile_interval(np.abs(draws - 0.5).mean(axis=0), confidence)
        if usable
        else (math.nan,) * 2
    )
    by_key = {(c.pair, c.order): c for c in usable}
    pairs = []
    for pair in sorted({c.pair for c in usable}):
        if (pair, "forward") not in by_key or (pair, "reverse") not in by_key:
            continue
        shares = [by_key[pair, "forward"].first_share,
                  _shift(by_key[pair, "reverse"].first_share, -1.0, 1.0)]  # fmt: skip
        value = (shares[0].value + shares[1].value) / 2.0
        lo = value - math.hypot(*[(e.value - e.low) / 2.0 for e in shares])
        hi = value + math.hypot(*[(e.high - e.value) / 2.0 for e in shares])
        red = Estimate(value, max(lo, 0.0), min(hi, 1.0))
        pairs.append(PairBias(pair, red, _shift(red, 1.0, -0.5)))
    return WordBias(conds, pairs, Estimate(mean_abs, *ci))


# --- one intervention against another: ΔS ----------------------------------------------------


def step_likeness_difference(
    x: ArrayLike,
    k_base: ArrayLike,
    n_base: ArrayLike | None,
    k_other: ArrayLike,
    n_other: ArrayLike | None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """ΔS = S(other) − S(base) on one grid x, with an interval that covers.

    The two runs are independent (two runs of one experiment, e.g. an intervention and
    `direct`). S is biased upwards near calibration (a calibrated model's Ŝ ≈ 0.12 at N = 100),
    and what was measured (tests/test_matrix.py) ruled out the usual constructions: a
    percentile bootstrap of the difference covered the true ΔS of a step-like model against a
    calibrated one in 0 % of simulations, and MOVER (Newcombe's square-root combination of the
    two intervals) in 57 %. What holds: each side's own bias-aware interval
    (`metrics.step_likeness_interval`, whose coverage the suite measures) at confidence
    √confidence, and the difference's interval [low_other − high_base, high_other − low_base],
    which covers whenever both sides do — with independent sides, at least √c · √c = c when
    each side covers at its nominal level. Either side may be exact (n None: a point).
    """
    side = math.sqrt(confidence)
    a = response_curve(x, k_base, n_base, n_boot=n_boot, confidence=side, seed=seed)
    b = response_curve(x, k_other, n_other, n_boot=n_boot, confidence=side, seed=seed + 1)
    return Estimate(b.s.value - a.s.value, b.s.low - a.s.high, b.s.high - a.s.low)
