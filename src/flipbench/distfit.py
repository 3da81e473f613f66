"""Does the whole answer distribution match the request, not just the rate of "1"?

The step-likeness S (``flipbench.metrics``) scores one rate per condition. The paper's
other findings need the shape of the distribution: D flips in one reply are
under-dispersed against Binomial(D, p), ternary draws drift from (60 - q, 40, q) %, and
"draw from N(100, 15)" answers are far too concentrated (``flipbench.gaussfit``). This
module measures the first two shapes, each number with an interval. Response-curve metrics
(per-position S, word order, games) live in ``flipbench.curves``.

Results are frozen dataclasses of ``Estimate`` values whose ``to_dict()`` is strict JSON
(``flipbench.estimate``); every bootstrap interval comes from ``flipbench.bootstrap``.
Exact mode (``exact=True``): the input is a probability vector read from the model's
next-token distribution, so there is no sampling error and every interval is a point.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from flipbench.bootstrap import (
    check_boot,
    generator,
    hull_interval,
    multinomial_counts,
    nearest_marginals,
    percentile_interval,
    redraw_binomial,
    redraw_shares,
)
from flipbench.estimate import Estimate, FitResult
from flipbench.metrics import check_unit, rate_summary

__all__ = [
    "CategoricalFit",
    "ChiSquare",
    "CountHistogram",
    "Estimate",
    "FitResult",
    "binary_replies",
    "categorical_fit",
    "chi_square_test",
    "count_histogram",
    "pool_sparse_cells",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SUM_TOL = 1e-9  # how far a probability vector may miss summing to 1 (float noise only)


def binary_replies(replies: ArrayLike) -> IntArray:
    """(n_replies, D) array of 0/1 flips; anything else is a parser bug, so it raises."""
    arr = np.asarray(replies)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"replies must have shape (n_replies, D >= 1), got {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("replies must hold only 0 and 1")
    return arr.astype(np.int64)


# --- D flips in one reply: number of "1"s per reply against Binomial(D, p) ---------------


def pool_sparse_cells(expected: ArrayLike, min_expected: float = 5.0) -> list[tuple[int, int]]:
    """Adjacent cells pooled so that every bin expects >= min_expected (or one bin is left).

    Rule: while some bin expects fewer than ``min_expected``, merge the bin with the
    smallest expectation into its neighbour with the smaller expectation (left on ties).
    For a unimodal pmf such as the binomial this pools each tail inwards, the textbook
    rule for chi-square tests. Returns (first cell, last cell) per bin, inclusive.
    """
    exp = [float(e) for e in np.asarray(expected, dtype=np.float64)]
    bins = [(k, k) for k in range(len(exp))]
    while len(exp) > 1 and min(exp) < min_expected:
        i = int(np.argmin(exp))
        right = i == 0 or (i < len(exp) - 1 and exp[i + 1] < exp[i - 1])
        a = i if right else i - 1
        bins[a : a + 2] = [(bins[a][0], bins[a + 1][1])]
        exp[a : a + 2] = [exp[a] + exp[a + 1]]
    return bins


@dataclasses.dataclass(frozen=True)
class CountHistogram(FitResult):
    """Replies with k ones (k = 0..D) against n * Binomial(D, p).pmf(k).

    ``variance_ratio`` = sample variance of k (ddof = 1, unbiased under the binomial) over
    D p (1 - p): 1 for independent flips, < 1 under-dispersed (too regular), > 1 clumped.
    Both tests use the pooled ``bins``; df = bins - 1 (p is given, not estimated).
    ``degenerate`` (p = 0 or 1): Binomial(D, p) puts all mass on k = 0 (or D). A reply
    with any other k is impossible under the request, so ``impossible`` counts them and
    the p-values are exact: 0 if any, else 1 (G and chi-square inf or 0, df 0). The
    variance ratio then has a zero denominator and is undefined (None; inf if var > 0).
    """

    p: float
    flips: int
    n: int
    observed: list[int]
    expected: list[float]
    bins: list[tuple[int, int]]
    bin_observed: list[int]
    bin_expected: list[float]
    g_stat: float
    chi2_stat: float
    df: int
    g_pvalue: float
    chi2_pvalue: float
    mean_ones: float
    variance_ratio: Estimate
    degenerate: bool
    impossible: int


def count_histogram(
    replies: ArrayLike,
    p: float,
    *,
    min_expected: float = 5.0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CountHistogram:
    """Histogram of ones per reply vs Binomial(D, p): G and chi-square tests, variance ratio.

    The variance-ratio interval is a percentile bootstrap over replies (drawn as a
    multinomial over the D + 1 histogram cells, which is the same thing, all at once).
    """
    from scipy import stats  # here, not at the top: scipy costs every CLI command ~0.5 s

    arr = binary_replies(replies)
    check_unit(np.array([p], dtype=np.float64), "p")
    check_boot(n_boot, confidence)
    rng = generator(seed)
    n, flips = arr.shape
    if n == 0:
        raise ValueError("no replies: nothing to compare with the binomial")
    ks = np.arange(flips + 1)
    observed = np.bincount(arr.sum(axis=1), minlength=flips + 1)
    expected = n * stats.binom.pmf(ks, flips, p)
    var = float(np.var(arr.sum(axis=1), ddof=1)) if n > 1 else math.nan
    denom = flips * p * (1.0 - p)
    mean_ones = float(observed @ ks / n)
    if denom == 0.0:
        support = 0 if p == 0.0 else flips
        bad = int(n - observed[support])
        bins, b_obs, b_exp = [(0, 0), (1, flips)], [n - bad, bad], [float(n), 0.0]
        if support:
            bins, b_obs, b_exp = [(0, flips - 1), (flips, flips)], b_obs[::-1], b_exp[::-1]
        stat, pval = (math.inf, 0.0) if bad else (0.0, 1.0)
        ratio = math.inf if var > 0 else math.nan
        return CountHistogram(
            p, flips, n, observed.tolist(), expected.tolist(), bins, b_obs, b_exp,
            stat, stat, 0, pval, pval, mean_ones, Estimate(ratio, math.nan, math.nan), True, bad,
        )  # fmt: skip
    bins = pool_sparse_cells(expected, min_expected)
    bin_obs = np.array([observed[a : b + 1].sum() for a, b in bins], dtype=np.float64)
    bin_exp = np.array([expected[a : b + 1].sum() for a, b in bins])
    df = len(bins) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        g = float(2.0 * np.sum(np.where(bin_obs > 0, bin_obs * np.log(bin_obs / bin_exp), 0.0)))
    chi2 = float(np.sum((bin_obs - bin_exp) ** 2 / bin_exp))
    g_p = float(stats.chi2.sf(g, df)) if df > 0 else math.nan
    chi2_p = float(stats.chi2.sf(chi2, df)) if df > 0 else math.nan
    ratio_ci = (math.nan, math.nan)
    if n > 1:
        counts = multinomial_counts(rng, n, observed / n, n_boot)
        m1 = counts @ ks / n
        var_star = np.maximum(counts @ ks**2 - n * m1**2, 0.0) / (n - 1)
        ratio_ci = percentile_interval(var_star / denom, confidence)
    return CountHistogram(
        p, flips, n, observed.tolist(), expected.tolist(), bins,
        [int(v) for v in bin_obs], bin_exp.tolist(), g, chi2, df, g_p, chi2_p, mean_ones,
        Estimate(var / denom, *ratio_ci), False, 0,
    )  # fmt: skip


# --- categorical draws (a die, the ternary deck) ------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChiSquare(FitResult):
    """Pearson's goodness of fit of answer counts to the request.

    Answers the request declares impossible (share 0) are left out of the statistic; if any
    was answered, the request is rejected outright (``stat`` inf, ``p_value`` 0).
    ``min_expected`` below 5 means the chi-square approximation is rough.
    """

    stat: float
    df: int
    p_value: float
    min_expected: float | None


def chi_square_test(counts: FloatArray, requested: FloatArray) -> ChiSquare:
    """``ChiSquare`` of integer counts against requested shares (same order)."""
    from scipy import stats  # here, not at the top: scipy costs every CLI command ~0.5 s

    n = float(counts.sum())
    allowed = requested > 0
    df = int(allowed.sum()) - 1
    if counts[~allowed].sum() > 0:
        return ChiSquare(math.inf, df, 0.0, None)
    expected = n * requested[allowed] / requested[allowed].sum()
    stat = float(((counts[allowed] - expected) ** 2 / expected).sum()) if df > 0 else 0.0
    p_value = float(stats.chi2.sf(stat, df)) if df > 0 else 1.0
    return ChiSquare(stat, df, p_value, float(expected.min()))


@dataclasses.dataclass(frozen=True)
class CategoricalFit(FitResult):
    """Observed category rates against the requested distribution.

    ``rates``: Wilson interval per category (category vs the rest is binomial). These are
    marginal 95 % intervals, one per plotted rate curve, and agree with every other rate
    in the benchmark; a simultaneous (Dirichlet) region would answer a question no figure
    asks. ``kl`` = KL(observed || requested) in nats; it is inf (``kl_infinite``) when the
    observed puts mass where the request puts none (e.g. "2" at q = 0): the request
    declares that answer impossible, so no finite number is honest. ``tv`` (total
    variation, 0..1) is always finite and is the curve to plot. ``outside_mass``: exact
    mode only, probability on tokens outside the answer space, renormalised away.
    ``chi_square``: sampled mode only (``chi_square_test``).
    """

    requested: list[float]
    n: int | None
    rates: list[Estimate]
    kl: Estimate
    kl_infinite: bool
    tv: Estimate
    outside_mass: float | None
    chi_square: ChiSquare | None = None


def _kl_rows(obs: FloatArray, req: FloatArray) -> FloatArray:
    """KL(row || req) for each row, 0 log 0 = 0, inf where a row has mass req lacks."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(obs > 0, obs * (np.log(obs) - np.log(req)), 0.0)
    out: FloatArray = terms.sum(axis=-1)
    return out


def _tv_rows(obs: FloatArray, req: FloatArray) -> FloatArray:
    """Total variation ½ Σ |row − req| for each row (or of one distribution)."""
    out: FloatArray = 0.5 * np.abs(obs - req).sum(axis=-1)
    return out


def categorical_fit(
    observed: ArrayLike,
    requested: ArrayLike,
    *,
    exact: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CategoricalFit:
    """Rates, KL and TV of observed counts (or exact probabilities) against ``requested``.

    Sampled mode: ``observed`` are integer counts per category. TV and KL are built from the
    distance of each share to its request, so noise biases them upward, most near the request
    (a calibrated model never gets TV = 0), and a percentile interval misses calibrated models.
    Their intervals are ``bootstrap.hull_interval``: multinomial redraws of the n answers, and
    redraws from every share moved to its request as far as its Wilson interval allows
    (``nearest_marginals``; TV's and KL's expectations depend only on the shares' binomial
    marginals), the bias-aware interval of the two joined with the percentile one. Coverage
    is measured in tests/test_coverage.py. An infinite KL keeps the percentile interval (inf).
    The point estimates are the plain TV and KL of the observed shares.
    """
    req = np.asarray(requested, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    if req.ndim != 1 or obs.shape != req.shape:
        raise ValueError(f"observed {obs.shape} and requested {req.shape} must be equal 1-D")
    check_unit(req, "requested")
    if not np.all(np.isfinite(req)) or abs(req.sum() - 1.0) > _SUM_TOL:
        raise ValueError("requested must be a probability vector summing to 1")
    if not np.all(np.isfinite(obs)) or np.any(obs < 0):
        raise ValueError("observed must be finite and non-negative")
    check_boot(n_boot, confidence)
    rng = generator(seed)
    total = float(obs.sum())
    if total <= 0:
        raise ValueError("observed is empty: no answer in the answer space")
    probs = obs / total
    kl = float(_kl_rows(probs, req))
    tv = float(_tv_rows(probs, req))
    if exact:
        if total > 1.0 + _SUM_TOL:
            raise ValueError("exact probabilities sum to more than 1")
        return CategoricalFit(
            req.tolist(), None, [Estimate.point(float(v)) for v in probs],
            Estimate.point(kl), math.isinf(kl), Estimate.point(tv), max(0.0, 1.0 - total),
        )  # fmt: skip
    if np.any(obs != np.round(obs)):
        raise ValueError("observed counts must be integers (pass exact=True for probabilities)")
    n = round(total)
    rates = [Estimate(*rate_summary(int(k), n, confidence)) for k in obs]
    star = redraw_shares(rng, n, probs, n_boot)
    near = nearest_marginals(probs, n, req, confidence)
    near_star = redraw_binomial(rng, np.full(req.shape, n), near, n_boot)
    tv_near = (float(_tv_rows(near, req)), _tv_rows(near_star, req))
    tv_ci = hull_interval(tv, _tv_rows(star, req), tv_near, confidence, (0.0, 1.0))
    kl_star = _kl_rows(star, req)
    if math.isinf(kl):  # mass where the request has none: every replicate is inf too
        kl_ci = percentile_interval(kl_star, confidence)
    else:
        kl_near = (float(_kl_rows(near, req)), _kl_rows(near_star, req))
        kl_ci = hull_interval(kl, kl_star, kl_near, confidence, (0.0, math.inf))
    return CategoricalFit(
        req.tolist(), n, rates, Estimate(kl, *kl_ci), math.isinf(kl), Estimate(tv, *tv_ci), None,
        chi_square_test(obs, req),
    )  # fmt: skip
