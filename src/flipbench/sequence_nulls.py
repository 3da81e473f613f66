"""Null distributions of the sequence tests (`flipbench.sequence_tests`), exact where cheap.

A condition holds many short sequences (replies of D flips, chains of turns), so each statistic
is a sum over sequences of independent per-sequence terms. The exact null of the sum is the
convolution of the per-sequence nulls: sequences with the same null are grouped and their pmf
raised to its power by repeated squaring (direct `np.convolve`, all terms positive, so small
tail probabilities keep their relative precision; an FFT would bury them under 1e-16 noise).
Beyond `EXACT_SUPPORT` values of the sum the normal approximation with the exact moments takes
over: by then the sum runs over hundreds of sequences and the central limit theorem holds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXACT_SUPPORT",
    "MAX_DP_LENGTH",
    "Null",
    "changes_moments",
    "changes_pmf_binary",
    "longest_run_cdf",
    "normal_p",
    "sum_null",
    "two_sided_p",
]

FloatArray = npt.NDArray[np.float64]

#: The largest support of a pooled statistic whose null is convolved exactly.
EXACT_SUPPORT = 20_000
#: The longest segment whose longest-run distribution the dynamic programme computes.
MAX_DP_LENGTH = 256


def _log_comb(n: npt.ArrayLike, k: npt.ArrayLike) -> FloatArray:
    from scipy.special import gammaln  # here, not at the top: scipy is slow to import

    n_ = np.asarray(n, dtype=float)
    k_ = np.asarray(k, dtype=float)
    ok = (k_ >= 0) & (k_ <= n_) & (n_ >= 0)
    out = np.full(np.broadcast(n_, k_).shape, -np.inf)
    safe_n, safe_k = np.where(ok, n_, 0.0), np.where(ok, k_, 0.0)
    value = gammaln(safe_n + 1) - gammaln(safe_k + 1) - gammaln(safe_n - safe_k + 1)
    return np.asarray(np.where(ok, value, out), dtype=float)


@functools.lru_cache(maxsize=4096)
def changes_pmf_binary(n0: int, n1: int) -> FloatArray:
    """P(C = c), c = 0 … n0 + n1 − 1, for the number of changes C = runs − 1 of a uniformly
    random arrangement of n0 zeros and n1 ones (the Wald–Wolfowitz null given the counts)."""
    length = n0 + n1
    pmf = np.zeros(max(length, 1))
    if n0 == 0 or n1 == 0:
        pmf[0] = 1.0
        pmf.flags.writeable = False
        return pmf
    total = _log_comb(length, n1)
    k = np.arange(1, length + 1)
    even = np.log(2.0) + _log_comb(n0 - 1, k - 1) + _log_comb(n1 - 1, k - 1) - total  # R = 2k
    odd = (
        np.logaddexp(  # R = 2k + 1
            _log_comb(n0 - 1, k) + _log_comb(n1 - 1, k - 1),
            _log_comb(n0 - 1, k - 1) + _log_comb(n1 - 1, k),
        )
        - total
    )
    for r, logp in ((2 * k, even), (2 * k + 1, odd)):
        keep = (r - 1 < length) & np.isfinite(logp)
        pmf[r[keep] - 1] += np.exp(logp[keep])
    pmf.flags.writeable = False  # cached: shared by every caller
    return pmf


def changes_moments(counts: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Exact mean and variance of the number of changes of each row's multiset of categories
    (`counts`: segments × categories) arranged uniformly at random.

    C = Σ_t I_t with I_t = [x_t ≠ x_{t+1}]; E[C²] needs the chance that 2, 3 and 4 given cells
    share a category (e2, e3: one category; f: two disjoint pairs each equal).
    """
    n = np.atleast_2d(np.asarray(counts, dtype=float))
    length = n.sum(axis=1)

    def falling(x: FloatArray, k: int) -> FloatArray:
        out = np.ones_like(x)
        for i in range(k):
            out = out * (x - i)
        return out

    def ratio(num: FloatArray, den: FloatArray) -> FloatArray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    e2 = ratio(falling(n, 2).sum(axis=1), falling(length, 2))
    e3 = ratio(falling(n, 3).sum(axis=1), falling(length, 3))
    pairs = falling(n, 2)
    same_four = falling(n, 4).sum(axis=1) + pairs.sum(axis=1) ** 2 - (pairs**2).sum(axis=1)
    f = ratio(same_four, falling(length, 4))
    steps = np.maximum(length - 1, 0)
    mean = steps * (1 - e2)
    second = (
        mean
        + 2 * np.maximum(length - 2, 0) * (1 - 2 * e2 + e3)
        + np.maximum(length - 2, 0) * np.maximum(length - 3, 0) * (1 - 2 * e2 + f)
    )
    var = np.maximum(second - mean**2, 0.0)
    return mean, var


def longest_run_cdf(length: int, shares: npt.ArrayLike) -> FloatArray:
    """F[t, m] = P(longest run of one category ≤ m) in t i.i.d. draws from `shares`, for
    t = 0 … length and m = 0 … length (exact dynamic programme over (category, current run
    length); one pass gives every shorter length too)."""
    q = np.asarray(shares, dtype=float)
    k = len(q)
    cdf = np.zeros((length + 1, length + 1))
    cdf[0, :] = 1.0
    if length == 0:
        return cdf
    m = np.arange(length + 1)
    # state[m, c, r]: P(no run > m so far, current run is category c of length r + 1)
    state = np.zeros((length + 1, k, length))
    state[:, :, 0] = q[None, :]
    state[0] = 0.0  # m = 0 allows no draw at all
    allowed = (np.arange(length)[None, :] < m[:, None]).astype(float)  # run length r+1 ≤ m
    cdf[1] = state.sum(axis=(1, 2))
    for t in range(2, length + 1):
        alive = state.sum(axis=2)  # (m, c)
        total = alive.sum(axis=1, keepdims=True)
        new = np.zeros_like(state)
        new[:, :, 0] = (total - alive) * q[None, :]
        new[:, :, 1:] = state[:, :, :-1] * q[None, :, None]
        new *= allowed[:, None, :]
        state = new
        cdf[t] = state.sum(axis=(1, 2))
    return np.minimum(cdf, 1.0)


def _convolve_power(pmf: FloatArray, power: int) -> FloatArray:
    result = np.ones(1)
    base = pmf
    while power:
        if power & 1:
            result = np.convolve(result, base)
        power >>= 1
        if power:
            base = np.convolve(base, base)
    return result


class Null:
    """The null of a pooled sum: its exact pmf over 0 … len − 1 (None when only the normal
    approximation is used), mean and variance."""

    def __init__(self, pmf: FloatArray | None, mean: float, var: float) -> None:
        self.pmf = pmf
        self.mean = mean
        self.var = var

    @property
    def method(self) -> str:
        return "exact" if self.pmf is not None else "normal approximation (exact moments)"

    def p_value(self, observed: int) -> float | None:
        """Two-sided (mid-p when exact); None when the null is a constant."""
        if self.var <= 1e-12:
            return None
        if self.pmf is not None:
            return two_sided_p(self.pmf, observed)
        return normal_p(observed, self.mean, self.var)


def sum_null(groups: Collection[tuple[FloatArray, int]]) -> Null:
    """The null of Σ over sequences, given each group's per-sequence pmf and multiplicity."""
    mean = var = 0.0
    support = 1
    for pmf, count in groups:
        values = np.arange(len(pmf))
        mu = float(values @ pmf)
        mean += count * mu
        var += count * float(((values - mu) ** 2) @ pmf)
        support += count * (len(pmf) - 1)
    if support > EXACT_SUPPORT:
        return Null(None, mean, var)
    total = np.ones(1)
    for pmf, count in groups:
        total = np.convolve(total, _convolve_power(pmf, count))
    return Null(total / total.sum(), mean, var)


def two_sided_p(pmf: FloatArray, observed: int) -> float:
    """Twice the smaller mid-p tail (P(beyond) + P(equal) / 2), capped at 1.

    The plain tails of a discrete statistic reject less often than α (at D = 3 the runs test
    did so 2–3 % of the time at α = 5 %); the mid-p brings the size back to nominal on average
    (tests/test_sequence_tests.py measures it)."""
    if observed < 0 or observed >= len(pmf):
        return 0.0
    at = float(pmf[observed])
    low = float(pmf[:observed].sum()) + at / 2
    high = float(pmf[observed + 1 :].sum()) + at / 2
    return min(1.0, 2.0 * min(low, high))


def normal_p(observed: float, mean: float, var: float) -> float:
    """Two-sided normal p-value (no continuity correction: the mid-p's counterpart)."""
    return min(1.0, math.erfc(abs(observed - mean) / math.sqrt(2.0 * var)))
