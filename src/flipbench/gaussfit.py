"""Does a "draw from N(100, 15)" match the request? Moments, a right-sized test, a histogram.

Part of the distribution fits (``flipbench.distfit``, which re-exports these names), kept in
its own module to keep modules short. Integer answers are tested against the rounded normal,
not with a continuous KS test, which rounding alone makes reject (docs/experiments.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from flipbench.bootstrap import check_confidence
from flipbench.distfit import pool_sparse_cells
from flipbench.estimate import Estimate, FitResult
from flipbench.metrics import rate_summary

FloatArray = npt.NDArray[np.float64]


__all__ = ["INTEGER_SHARE_MIN", "GaussianFit", "discretised_normal_test", "gaussian_fit"]


@dataclasses.dataclass(frozen=True)
class GaussianFit(FitResult):
    """Parsed numbers against N(mean, sd): goodness of fit, moments, integer share, histogram.

    ``ks_stat`` / ``ks_pvalue``: the continuous Kolmogorov–Smirnov test, always reported. It
    assumes a continuous sample and is anti-conservative on integer answers: rounding alone
    puts the empirical cdf 0.013 from the normal's (sd 15), so ideal rounded N(100, 15)
    draws are rejected 20 % of the time at n = 1,000 and always at n = 10,000 (alpha 0.05).
    ``gof_*`` is the test whose size is right for the answers at hand. ``gof_test``
    "chi2_discretised" (``discretised_normal_test``, df ``gof_df``; size 0.05-0.06 for n
    100 to 10,000, measured) when at least ``INTEGER_SHARE_MIN`` (5 %) of the answers are
    integers, the others rounded half up; else "ks", the KS again (``gof_df`` None): with
    fewer integers its size holds (0.054 at n = 10,000), and below about 15 answers (a
    single pooled bin, no chi-square) the rounding is lost in its noise.
    ``mean``: t interval; ``sd``: chi-square interval (exact for normal data). Histogram
    bins are ``bin_width`` wide and centred on the target mean, so integer answers never
    fall on an edge; they cover the mean +- ``span_sd`` sd, values beyond are counted in
    ``below`` / ``above``. ``bin_density`` = count / (n * width), directly comparable with
    ``normal_density`` (target pdf at bin centres); ``expected_counts`` = n * P(bin) under
    the target.
    """

    target_mean: float
    target_sd: float
    n: int
    n_dropped: int
    ks_stat: float
    ks_pvalue: float
    mean: Estimate
    sd: Estimate
    integer_share: Estimate
    bin_edges: list[float]
    bin_counts: list[int]
    bin_density: list[float]
    normal_density: list[float]
    expected_counts: list[float]
    below: int
    above: int
    gof_test: str
    gof_stat: float
    gof_df: int | None
    gof_pvalue: float


INTEGER_SHARE_MIN = 0.05  # from this share of integer answers on, test them as integers
_CELL_SPAN_SD = 6.0  # integer cells of the discretised normal: the mean +- 6 sd


def discretised_normal_test(
    values: ArrayLike, *, mean: float = 100.0, sd: float = 15.0, min_expected: float = 5.0
) -> tuple[FloatArray, int, FloatArray]:
    """Pearson's chi-square of integer answers against N(mean, sd) discretised to integers.

    The null puts P(k) = Phi((k + 0.5 - mean) / sd) - Phi((k - 0.5 - mean) / sd) on each
    integer k: the law of a N(mean, sd) draw rounded to the nearest integer, so its size is
    right for integer answers (the continuous KS's is not). A non-integer value is rounded
    half up first (any value, rounded, follows this law under the null). Cells: the integers
    within mean +- 6 sd, the outermost two also holding the tails beyond, pooled by
    ``pool_sparse_cells`` until each expects >= ``min_expected``; df = bins - 1 (mean and
    sd are given, not estimated). ``values`` has shape (..., n), one sample per row, so a
    size simulation is one call. Returns (stat, df, p-value) with the leading shape; the
    p-value is NaN when pooling leaves a single bin (n < 15 at the default 5): no test.
    """
    from scipy import stats  # here, not at the top: scipy costs every CLI command ~0.5 s

    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0 or not np.all(np.isfinite(x)):
        raise ValueError("values must be finite numbers of shape (..., n >= 1)")
    if not sd > 0:
        raise ValueError("sd must be positive")
    n = x.shape[-1]
    lo = math.ceil(mean - _CELL_SPAN_SD * sd)
    hi = max(math.floor(mean + _CELL_SPAN_SD * sd), lo + 1)
    cdf = stats.norm.cdf(np.arange(lo, hi) + 0.5, mean, sd)  # cell k: [k - .5, k + .5)
    expected = n * np.diff(cdf, prepend=0.0, append=1.0)  # cells lo (and below) .. hi (and up)
    bins = pool_sparse_cells(expected, min_expected)
    starts = [first for first, _ in bins]
    cells = np.clip(np.floor(x + 0.5) - lo, 0, expected.size - 1).astype(np.int64)
    rows = cells.reshape(-1, n)
    flat = rows + expected.size * np.arange(rows.shape[0])[:, None]
    counts = np.bincount(flat.ravel(), minlength=rows.size // n * expected.size)
    obs = np.add.reduceat(counts.reshape(rows.shape[0], -1), starts, axis=1)
    exp = np.add.reduceat(expected, starts)
    stat: FloatArray = ((obs - exp) ** 2 / exp).sum(axis=1).reshape(x.shape[:-1])
    df = len(bins) - 1
    p: FloatArray = stats.chi2.sf(stat, df) if df > 0 else np.full(stat.shape, np.nan)
    return stat, df, p


def gaussian_fit(
    values: ArrayLike,
    *,
    mean: float = 100.0,
    sd: float = 15.0,
    bin_width: float = 5.0,
    span_sd: float = 5.0,
    confidence: float = 0.95,
) -> GaussianFit:
    """Fit of parsed numbers to N(mean, sd); non-finite values are dropped and counted."""
    from scipy import stats  # here, not at the top: scipy costs every CLI command ~0.5 s

    raw = np.asarray(values, dtype=np.float64).ravel()
    x = raw[np.isfinite(raw)]
    n = int(x.size)
    if n == 0:
        raise ValueError("no finite values to compare with the normal")
    if sd <= 0 or bin_width <= 0:
        raise ValueError("sd and bin_width must be positive")
    check_confidence(confidence)
    alpha = 1.0 - confidence
    ks = stats.kstest(x, "norm", args=(mean, sd))
    m = float(x.mean())
    s = float(x.std(ddof=1)) if n > 1 else math.nan
    mean_ci, sd_ci = (math.nan, math.nan), (math.nan, math.nan)
    if n > 1:
        half = float(stats.t.ppf(1.0 - alpha / 2.0, n - 1)) * s / math.sqrt(n)
        mean_ci = (m - half, m + half)
        chi_hi, chi_lo = stats.chi2.ppf([1.0 - alpha / 2.0, alpha / 2.0], n - 1)
        sd_ci = (s * math.sqrt((n - 1) / chi_hi), s * math.sqrt((n - 1) / chi_lo))
    half_bins = math.ceil(span_sd * sd / bin_width)
    edges = mean + bin_width * (np.arange(-half_bins, half_bins + 2) - 0.5)
    counts, _ = np.histogram(x, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2.0
    cdf = stats.norm.cdf(edges, mean, sd)
    integers = int(np.sum(x == np.round(x)))
    gof: tuple[str, float, int | None, float] = ("ks", float(ks.statistic), None, float(ks.pvalue))
    if integers >= INTEGER_SHARE_MIN * n:
        chi2, df, p = discretised_normal_test(x, mean=mean, sd=sd)
        if df > 0:  # else n < ~15: a single pooled bin, no chi-square; the KS stands
            gof = ("chi2_discretised", float(chi2), df, float(p))
    return GaussianFit(
        mean, sd, n, int(raw.size - n), float(ks.statistic), float(ks.pvalue),
        Estimate(m, *mean_ci), Estimate(s, *sd_ci),
        Estimate(*rate_summary(integers, n, confidence)),
        edges.tolist(), counts.tolist(), (counts / (n * bin_width)).tolist(),
        stats.norm.pdf(centres, mean, sd).tolist(), (n * np.diff(cdf)).tolist(),
        int(np.sum(x < edges[0])), int(np.sum(x > edges[-1])), *gof,
    )  # fmt: skip
