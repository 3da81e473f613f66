"""Serial tests for many short sequences of outcomes: D flips in one reply, a chain of turns.

Per-position rates say whether each flip follows p; they cannot see the serial failures —
alternation (0 1 0 1), streaks, a reply that repeats one answer. These tests can, pooled over
many short sequences (docs/sequences.md gives each test's statistic and null):

* **runs** (Wald–Wolfowitz): the number of runs, conditional on each sequence's counts; the
  per-sequence nulls are independent, so the pooled null is their convolution (exact for binary
  outcomes, `sequence_nulls`). Too many runs: alternation; too few: streaks.
* **lag-k autocorrelation**: the pooled sample autocorrelation; its p-value from the exact
  mean and variance of the number of lag-k "1 1" pairs when all valid flips are arranged at
  random (i.i.d. flips with one rate, conditional on the total count), normal approximation.
* **longest run**: the mean longest run per sequence against its exact distribution under
  i.i.d. draws at the observed shares (dynamic programme, then the convolution over
  sequences), and the single longest run against the chance of one at least as long.
* **bigrams**: the lag-1 transition table against independence (Pearson χ²).

Invalid positions (None, NaN) break a sequence into segments: no pair spans one. A p-value is
None, with a note, wherever the data cannot test anything (constant outcomes, no pairs); it is
never NaN. Pure numerics: no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from flipbench.estimate import Estimate
from flipbench.metrics import wilson_interval
from flipbench.sequence_input import IntArray, Segments, encode, longest_runs, segments_of
from flipbench.sequence_nulls import (
    MAX_DP_LENGTH,
    changes_moments,
    changes_pmf_binary,
    longest_run_cdf,
    normal_p,
    sum_null,
)

__all__ = [
    "Autocorrelation",
    "BigramCell",
    "Bigrams",
    "LongestRun",
    "PositionRates",
    "RunsTest",
    "SequenceTests",
    "encode",
    "sequence_tests",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PositionRates(_Model):
    """Position j (1-based): its valid count and each category's share (95 % Wilson)."""

    position: int
    n: int
    rates: dict[str, Estimate]


class RunsTest(_Model):
    """Runs over segments of ≥ 2 valid outcomes against the count-conditional null."""

    runs: int
    expected: float | None
    sd: float | None
    p_value: float | None
    n_segments: int
    method: str
    note: str = ""


class Autocorrelation(_Model):
    """Lag-k sample autocorrelation of binary outcomes (pooled; 0 under independence)."""

    lag: int
    rho: float | None
    n_pairs: int
    z: float | None
    p_value: float | None
    method: str = "normal approximation (exact permutation moments)"
    note: str = ""


class LongestRun(_Model):
    """Mean longest run per segment vs i.i.d. (two-sided), and the longest of all (upper)."""

    mean_observed: float | None
    mean_expected: float | None
    p_value: float | None
    longest: int | None
    p_longest: float | None
    n_segments: int
    method: str
    note: str = ""


class BigramCell(_Model):
    bigram: str
    count: int
    share: float
    expected_share: float
    residual: float  # (observed − expected) / √expected


class Bigrams(_Model):
    """Lag-1 transition counts against independence of consecutive outcomes."""

    cells: list[BigramCell]
    n_pairs: int
    chi2: float | None
    df: int
    p_value: float | None
    min_expected: float | None
    method: str = "Pearson chi-square"
    note: str = ""


class SequenceTests(_Model):
    """Every serial test of one set of sequences (one condition)."""

    categories: list[str]
    n_sequences: int
    n_valid: int
    n_invalid: int
    shares: dict[str, float]
    per_position: list[PositionRates]
    runs: RunsTest
    autocorrelation: list[Autocorrelation]
    longest_run: LongestRun
    bigrams: Bigrams

    def summary(self) -> str:
        """One line for `flipbench show`."""

        def p(value: float | None) -> str:
            return "—" if value is None else (f"{value:.2g}" if value >= 1e-4 else f"{value:.0e}")

        r = self.runs
        runs = f"runs {r.runs}" + (
            f" vs {r.expected:.1f} (p {p(r.p_value)})" if r.expected is not None else " (—)"
        )
        lags = ", ".join(
            f"lag {a.lag} {a.rho:+.2f} (p {p(a.p_value)})"
            if a.rho is not None
            else f"lag {a.lag} —"
            for a in self.autocorrelation
        )
        lr = self.longest_run
        longest = (
            f"longest run {lr.mean_observed:.2f} vs {lr.mean_expected:.2f} (p {p(lr.p_value)})"
            if lr.mean_observed is not None and lr.mean_expected is not None
            else "longest run —"
        )
        chi = self.bigrams.chi2
        bigrams = f"bigrams χ² {chi:.1f} (p {p(self.bigrams.p_value)})" if chi is not None else ""
        return "; ".join(x for x in (runs, f"autocorrelation {lags}" if lags else "", longest,
                                       bigrams) if x)  # fmt: skip


def _position_rates(x: IntArray, cats: list[str]) -> list[PositionRates]:
    out = []
    for j in range(x.shape[1]):
        col = x[:, j][x[:, j] >= 0]
        n = len(col)
        rates = {}
        for i, c in enumerate(cats):
            k = int((col == i).sum())
            lo, hi = wilson_interval(k, n) if n else (math.nan, math.nan)
            rates[c] = Estimate(k / n if n else math.nan, lo, hi)
        out.append(PositionRates(position=j + 1, n=n, rates=rates))
    return out


def _segment_table(segments: Segments, k: int) -> tuple[IntArray, IntArray]:
    """Each segment of ≥ 2 outcomes: its number of changes and its counts per category."""
    if isinstance(segments, np.ndarray):
        used = segments if segments.shape[1] >= 2 else segments[:0]
        changes = np.count_nonzero(np.diff(used, axis=1), axis=1)
        counts = (used[:, :, None] == np.arange(k)).sum(axis=1)
        return changes, counts
    rows = [s for s in segments if len(s) >= 2]
    changes = np.array([np.count_nonzero(np.diff(s)) for s in rows], dtype=np.int64)
    counts = np.array([np.bincount(s, minlength=k) for s in rows], dtype=np.int64)
    return changes, counts.reshape(len(rows), k)


def _runs(segments: Segments, k: int) -> RunsTest:
    per_segment, counts = _segment_table(segments, k)
    used = len(per_segment)
    changes = int(per_segment.sum())
    runs = changes + used
    if not used:
        return RunsTest(runs=0, expected=None, sd=None, p_value=None, n_segments=0,
                        method="", note="no sequence has two valid outcomes in a row")  # fmt: skip
    p: float | None
    if k == 2:
        groups = Counter((int(a), int(b)) for a, b in counts)
        null = sum_null([(changes_pmf_binary(*g), m) for g, m in groups.items()])
        mean, var, p, method = null.mean, null.var, null.p_value(changes), null.method
    else:
        means, variances = changes_moments(counts)
        mean, var = float(means.sum()), float(variances.sum())
        p = normal_p(changes, mean, var) if var > 1e-12 else None
        method = "normal approximation (exact moments)"
    note = "" if p is not None else "each sequence's runs are fixed by its counts"
    return RunsTest(runs=runs, expected=mean + used, sd=math.sqrt(var), p_value=p,
                    n_segments=used, method=method, note=note)  # fmt: skip


def _falling(x: float, k: int) -> float:
    return math.prod(x - i for i in range(k))


def _autocorrelation(x: IntArray, lag: int) -> Autocorrelation:
    """ρ_k and its p-value: under a random arrangement of the m ones among the n valid cells
    (i.i.d. flips given their total), the exact mean and variance of ρ_k's numerator U."""
    valid = x >= 0
    values = np.where(valid, x, 0).astype(float)
    n, m = int(valid.sum()), float(values.sum())
    pairs = valid[:, :-lag] & valid[:, lag:] if lag < x.shape[1] else np.zeros((len(x), 0), bool)
    n_pairs = int(pairs.sum())
    if n_pairs == 0 or m in (0, n) or n < 4:
        why = "no pairs at this lag" if n_pairs == 0 else "every outcome is the same"
        return Autocorrelation(lag=lag, rho=None, n_pairs=n_pairs, z=None, p_value=None,
                               note=why)  # fmt: skip
    a, b = values[:, :-lag][pairs], values[:, lag:][pairs]
    mean = m / n
    # U = Σ (a − x̄)(b − x̄) = T − x̄·Q + N·x̄², T = Σ a·b, Q = Σ (a + b); x̄ is fixed under the
    # permutation, so U's exact mean and variance follow from those of T and Q and their
    # covariance; each depends on the pairs only through every cell's degree (pairs it is in).
    u = float(((a - mean) * (b - mean)).sum())
    rho = u / (n_pairs * mean * (1 - mean))
    degree = np.zeros(x.shape)
    degree[:, :-lag] += pairs
    degree[:, lag:] += pairs
    squares = float((degree**2).sum())  # Σ_c deg_c² = Σ_pairs (deg_i + deg_j)
    shared = squares - 2 * n_pairs  # ordered pairs of pairs sharing one cell
    e2, e3, e4 = (_falling(m, j) / _falling(n, j) for j in (2, 3, 4))
    mean_t = n_pairs * e2
    var_t = n_pairs * e2 + shared * e3 + (n_pairs * (n_pairs - 1) - shared) * e4 - mean_t**2
    mean_q = 2 * n_pairs * mean
    var_q = m * (n - m) / (n * (n - 1)) * (squares - (2 * n_pairs) ** 2 / n)
    cov_tq = e2 * squares + e3 * (2 * n_pairs**2 - squares) - mean_t * mean_q
    expected = mean_t - mean * mean_q + n_pairs * mean**2
    var = var_t + mean**2 * var_q - 2 * mean * cov_tq
    if var <= 1e-12:
        return Autocorrelation(lag=lag, rho=rho, n_pairs=n_pairs, z=None, p_value=None,
                               note="the null leaves no room to vary")  # fmt: skip
    z = (u - expected) / math.sqrt(var)
    return Autocorrelation(lag=lag, rho=rho, n_pairs=n_pairs, z=z,
                           p_value=normal_p(u, expected, var))  # fmt: skip


def _untested_longest(
    n_segments: int, note: str, mean: float | None = None, top: int | None = None
) -> LongestRun:
    return LongestRun(mean_observed=mean, mean_expected=None, p_value=None, longest=top,
                      p_longest=None, n_segments=n_segments, method="", note=note)  # fmt: skip


def _longest_run(segments: Segments, shares: npt.NDArray[np.float64]) -> LongestRun:
    lengths = [len(s) for s in segments if len(s)]
    observed = longest_runs(segments)
    if not lengths:
        return _untested_longest(0, "no valid outcomes")
    if max(lengths) > MAX_DP_LENGTH:
        return _untested_longest(len(lengths), f"a sequence is longer than {MAX_DP_LENGTH}")
    mean_obs = sum(observed) / len(observed)
    if np.isclose(shares.max(), 1.0):
        return _untested_longest(len(lengths), "every outcome is the same", mean_obs, max(observed))
    cdf = longest_run_cdf(max(lengths), shares)
    groups = Counter(lengths)
    null = sum_null(
        [(np.diff(cdf[length, : length + 1], prepend=0.0), c) for length, c in groups.items()]
    )
    top = max(observed)
    below = math.prod(float(cdf[length, top - 1]) ** c for length, c in groups.items())
    return LongestRun(mean_observed=mean_obs, mean_expected=null.mean / len(lengths),
                      p_value=null.p_value(sum(observed)), longest=top,
                      p_longest=min(1.0, max(0.0, 1.0 - below)), n_segments=len(lengths),
                      method=f"{null.method} (i.i.d. at the observed shares)")  # fmt: skip


def _bigrams(x: IntArray, cats: list[str]) -> Bigrams:
    k = len(cats)
    pairs = (x[:, :-1] >= 0) & (x[:, 1:] >= 0)
    first, second = x[:, :-1][pairs], x[:, 1:][pairs]
    table = np.bincount(first * k + second, minlength=k * k).reshape(k, k).astype(float)
    n = int(table.sum())
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n if n else np.zeros_like(table)
    cells = [
        BigramCell(bigram=f"{cats[i]} {cats[j]}", count=int(table[i, j]),
                   share=table[i, j] / n if n else 0.0,
                   expected_share=expected[i, j] / n if n else 0.0,
                   residual=float((table[i, j] - expected[i, j]) / math.sqrt(expected[i, j]))
                   if expected[i, j] > 0 else 0.0)
        for i in range(k) for j in range(k)
    ]  # fmt: skip
    rows, cols = table.sum(axis=1) > 0, table.sum(axis=0) > 0
    df = max(int(rows.sum()) - 1, 0) * max(int(cols.sum()) - 1, 0)
    if df == 0:
        note = "no pairs" if n == 0 else "one outcome fills a whole margin"
        return Bigrams(cells=cells, n_pairs=n, chi2=None, df=0, p_value=None,
                       min_expected=None, note=note)  # fmt: skip
    used = expected[np.ix_(rows, cols)]
    chi2 = float((((table[np.ix_(rows, cols)] - used) ** 2) / used).sum())
    small = float(used.min())
    note = "approximate: an expected count is below 5" if small < 5 else ""
    from scipy import stats  # here, not at the top: scipy costs every CLI command ~0.5 s

    return Bigrams(cells=cells, n_pairs=n, chi2=chi2, df=df, p_value=float(stats.chi2.sf(chi2, df)),
                   min_expected=small, note=note)  # fmt: skip


def sequence_tests(
    sequences: Sequence[Sequence[Hashable | None]] | npt.NDArray[np.generic],
    *,
    categories: Sequence[str] | None = None,
    max_lag: int = 5,
    per_position: bool = True,
) -> SequenceTests:
    """Every test of `sequences` (one per reply or chain; ragged; None/NaN = invalid).

    `categories` fixes the outcomes' order (default: sorted as strings); lags run 1 …
    min(max_lag, longest − 1); autocorrelation only for two categories.
    """
    if max_lag < 1:
        raise ValueError("max_lag must be at least 1")
    x, cats = encode(sequences, categories)
    k = len(cats)
    valid = x[x >= 0]
    total = int(sum(len(s) for s in sequences))
    counts = np.bincount(valid, minlength=k).astype(float) if k else np.zeros(0)
    shares = counts / counts.sum() if counts.sum() else np.zeros(k)
    segments = segments_of(x)
    lags = range(1, min(max_lag, max(x.shape[1] - 1, 0)) + 1) if k == 2 else range(0)
    return SequenceTests(
        categories=cats, n_sequences=len(x), n_valid=len(valid), n_invalid=total - len(valid),
        shares={c: float(s) for c, s in zip(cats, shares, strict=True)},
        per_position=_position_rates(x, cats) if per_position else [],
        runs=_runs(segments, k), autocorrelation=[_autocorrelation(x, lag) for lag in lags],
        longest_run=_longest_run(segments, shares), bigrams=_bigrams(x, cats),
    )  # fmt: skip
