"""Tests for flipbench.metrics: hand-computed values, edge cases and the paper's real data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from flipbench.bootstrap import generator, percentile_interval, redraw_binomial
from flipbench.metrics import (
    exact_rate_interval,
    noise_floor,
    rate_summary,
    step_likeness,
    step_likeness_interval,
    step_likeness_rows,
    wilson_interval,
)
from tests.paper_data import DATA

GRID = np.round(np.arange(21) * 0.05, 10)  # 0, 0.05, ..., 1 (the paper's grid)
FIG1_CSV = DATA / "fig1_single_flip.csv"


def _step(r_half: float) -> np.ndarray:
    return np.where(GRID < 0.5, 0.0, np.where(GRID > 0.5, 1.0, r_half))


# --- step_likeness ---------------------------------------------------------------------


def test_identity_curve_is_zero() -> None:
    assert step_likeness(GRID, GRID) == 0.0


def test_step_at_half_with_r_half_zero_or_one_is_exactly_one() -> None:
    # |r - p| is p below 0.5 and 1 - p above. With r(0.5) = 1 the node value at 0.5 is 0.5,
    # so |r - p| is the exact tent min(p, 1 - p) at every node and the trapezoid is exact:
    #   [0, .45] and [.55, 1]: linear, area .45^2 / 2 each         -> 0.2025
    #   [.45, .5] and [.5, .55]: .05 * (.45 + .5) / 2 each        -> 0.0475
    #   S = 4 * (0.2025 + 0.0475) = 4 * 0.25 = 1
    assert step_likeness(GRID, _step(1.0)) == pytest.approx(1.0, abs=1e-12)
    assert step_likeness(GRID, _step(0.0)) == pytest.approx(1.0, abs=1e-12)


def test_step_at_half_with_r_half_one_half_is_0_9() -> None:
    # r(0.5) = 0.5 puts |r - p| = 0 at the node 0.5, cutting the tip of the tent:
    #   [0, .45] and [.55, 1]: 0.2025 as above
    #   [.45, .5] and [.5, .55]: .05 * (.45 + 0) / 2 each          -> 0.0225
    #   S = 4 * (0.2025 + 0.0225) = 4 * 0.225 = 0.9   (not 1: the node at 0.5 sits on r = p)
    assert step_likeness(GRID, _step(0.5)) == pytest.approx(0.9, abs=1e-12)


def test_inverted_curve_is_two() -> None:
    assert step_likeness(GRID, 1.0 - GRID) == pytest.approx(2.0, abs=1e-12)


def test_constant_extrapolation_to_the_ends() -> None:
    # Nodes become (0, 0), (.25, 0), (.75, 1), (1, 1); |r - p| = 0, .25, .25, 0.
    #   .25 * (0 + .25) / 2 + .5 * (.25 + .25) / 2 + .25 * (.25 + 0) / 2
    #   = .03125 + .125 + .03125 = .1875  ->  S = 4 * .1875 = 0.75
    assert step_likeness([0.25, 0.75], [0.0, 1.0]) == pytest.approx(0.75, abs=1e-12)


def test_hand_computed_three_points() -> None:
    # p = .2, .4, .8 and r = .5, .1, .8. Extrapolated nodes:
    #   p: 0    .2   .4   .8   1
    #   r: .5   .5   .1   .8   .8
    #   |r-p|: .5 .3 .3   0    .2
    # segments: .2*(.5+.3)/2 = .08, .2*(.3+.3)/2 = .06, .4*(.3+0)/2 = .06, .2*(0+.2)/2 = .02
    # area = .22  ->  S = .88
    assert step_likeness([0.2, 0.4, 0.8], [0.5, 0.1, 0.8]) == pytest.approx(0.88, abs=1e-12)


def test_unsorted_input_gives_same_value() -> None:
    rng = np.random.default_rng(1)
    p = np.sort(rng.uniform(0.0, 1.0, 9))
    r = rng.uniform(0.0, 1.0, 9)
    perm = rng.permutation(9)
    assert step_likeness(p[perm], r[perm]) == pytest.approx(step_likeness(p, r), abs=1e-15)
    assert step_likeness(list(p[perm]), list(r[perm])) == step_likeness(p[perm], r[perm])


def test_non_finite_points_are_dropped() -> None:
    p = [0.2, 0.3, 0.4, 0.6, 0.8]
    r = [0.5, math.nan, 0.1, math.inf, 0.8]
    p2 = [0.2, math.nan, 0.4, 0.5, 0.8]
    r2 = [0.5, 0.9, 0.1, math.nan, 0.8]
    assert step_likeness(p, r) == pytest.approx(0.88, abs=1e-12)
    assert step_likeness(p2, r2) == pytest.approx(0.88, abs=1e-12)


def test_fewer_than_two_points_is_nan() -> None:
    assert math.isnan(step_likeness([], []))
    assert math.isnan(step_likeness([0.5], [0.5]))
    assert math.isnan(step_likeness([0.1, 0.5], [math.nan, 0.5]))


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="length"):
        step_likeness([0.0, 0.5, 1.0], [0.0, 1.0])


def test_percentages_are_rejected_not_guessed() -> None:
    with pytest.raises(ValueError, match="fractions"):
        step_likeness([0.0, 50.0, 100.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="fractions"):
        step_likeness([0.0, 0.5, 1.0], [0.0, 50.0, 100.0])


def test_step_likeness_on_released_fig1_data() -> None:
    # Must fail, not skip, when the file is missing: the data ships with every checkout.
    assert FIG1_CSV.is_file(), f"released data missing: {FIG1_CSV}"
    df = pd.read_csv(FIG1_CSV, dtype=str)
    p_frac = df["p"].astype(float) / 100.0
    first = df["answer"].astype(float) == 1.0
    r = first.groupby(p_frac).mean()
    assert len(r) == 21
    s = step_likeness(r.index.to_numpy(dtype=float), r.to_numpy(dtype=float))
    print(f"S(fig1, Claude 4.5 Sonnet) = {s:.6f}")
    # Observed: r = 0 for p <= .45, r(.5) = .01, r = 1 for p >= .55. Against the r(.5) = 0
    # step (S = 1) the node at .5 loses .01 of |r - p| over two .05 segments:
    #   S = 1 - 4 * .01 * (.05 / 2 + .05 / 2) = 1 - .002 = 0.998; the paper prints 1.00.
    assert s == pytest.approx(0.998, abs=1e-9)
    assert round(s, 2) == 1.00
    assert 0.5 < s < 1.2


# --- vectorised helper -----------------------------------------------------------------


@pytest.mark.parametrize("lo_hi", [(0.0, 1.0), (0.1, 0.9), (0.0, 0.7), (0.3, 1.0)])
def test_vectorised_helper_matches_step_likeness(lo_hi: tuple[float, float]) -> None:
    rng = np.random.default_rng(42)
    m = 7
    p = rng.uniform(*lo_hi, m)
    p[0], p[-1] = lo_hi  # grid touches the ends only when lo_hi says so
    rng.shuffle(p)
    r = rng.uniform(0.0, 1.0, (50, m))
    rows = step_likeness_rows(p, r)
    expected = np.array([step_likeness(p, row) for row in r])
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-12)


# --- Wilson and rate summaries -----------------------------------------------------------


def _textbook_wilson(k: int, n: int, z: float) -> tuple[float, float]:
    ph = k / n
    c = (ph + z**2 / (2 * n)) / (1 + z**2 / n)
    h = z * math.sqrt(ph * (1 - ph) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return c - h, c + h


def test_wilson_zero_successes() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0
    z = 1.959963984540054
    assert hi == pytest.approx(_textbook_wilson(0, 10, z)[1], abs=1e-12)
    assert hi == pytest.approx((z**2 / 10) / (1 + z**2 / 10), abs=1e-12)
    assert hi == pytest.approx(0.2775, abs=1e-4)


def test_wilson_matches_textbook_and_other_confidence() -> None:
    for conf in (0.9, 0.95, 0.99):
        z = float(norm.ppf(1 - (1 - conf) / 2))
        lo, hi = wilson_interval(37, 120, conf)
        tlo, thi = _textbook_wilson(37, 120, z)
        assert (lo, hi) == pytest.approx((tlo, thi), abs=1e-12)
    assert wilson_interval(37, 120, 0.99)[1] > wilson_interval(37, 120, 0.9)[1]


def test_wilson_all_successes() -> None:
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0
    assert lo == pytest.approx(1.0 - 0.2775, abs=1e-4)


def test_wilson_symmetry() -> None:
    for k in range(0, 21):
        lo, hi = wilson_interval(k, 20)
        lo2, hi2 = wilson_interval(20 - k, 20)
        assert lo == pytest.approx(1.0 - hi2, abs=1e-12)
        assert hi == pytest.approx(1.0 - lo2, abs=1e-12)
        assert 0.0 <= lo <= k / 20 <= hi <= 1.0


def test_wilson_empty_is_nan() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize(
    ("k", "n", "conf"), [(-1, 5, 0.95), (6, 5, 0.95), (0, -1, 0.95), (1, 5, 0.0), (1, 5, 1.0)]
)
def test_wilson_invalid_inputs_raise(k: int, n: int, conf: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n, conf)


def test_rate_summary_and_exact_interval() -> None:
    rate, lo, hi = rate_summary(3, 12)
    assert rate == 0.25
    assert (lo, hi) == wilson_interval(3, 12)
    assert all(math.isnan(v) for v in rate_summary(0, 0))
    assert exact_rate_interval(0.3125) == (0.3125, 0.3125)


# --- bootstrap ---------------------------------------------------------------------------


def _sigmoid_counts(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = 1.0 / (1.0 + np.exp(-(GRID - 0.5) * 8.0))
    nn = np.full(GRID.shape, n)
    return GRID, np.round(r * n).astype(int), nn


def test_bootstrap_is_deterministic_per_seed() -> None:
    p, k, n = _sigmoid_counts(50)
    a = step_likeness_interval(p, k, n, seed=7)
    assert a == step_likeness_interval(p, k, n, seed=7)
    b = step_likeness_interval(p, k, n, seed=8)
    assert (a.low, a.high, a.percentile) != (b.low, b.high, b.percentile)


def test_bootstrap_interval_contains_point_estimate() -> None:
    p, k, n = _sigmoid_counts(100)
    s = step_likeness(p, k / n)
    found = step_likeness_interval(p, k, n)
    assert found.value == pytest.approx(s, abs=1e-12)
    for lo, hi in ((found.low, found.high), found.percentile):
        assert lo < s < hi
        assert lo >= 0.0 and hi <= 2.0


def test_bootstrap_width_shrinks_with_n() -> None:
    small, large = (
        step_likeness_interval(*_sigmoid_counts(20)),
        step_likeness_interval(*_sigmoid_counts(2000)),
    )
    assert large.high - large.low < 0.3 * (small.high - small.low)


def test_bootstrap_zero_variance_collapses_only_the_percentile_interval() -> None:
    """A sampled 0/1 step: redraws of its rates never move, so the percentile interval is a
    point; the reported one still admits the curves nearer the diagonal that 30 answers allow."""
    n = np.full(GRID.shape, 30)
    k = np.where(GRID >= 0.55, 30, 0)
    found = step_likeness_interval(GRID, k, n)
    lo, hi = found.percentile
    assert lo == hi == pytest.approx(step_likeness(GRID, k / n), abs=1e-12)
    assert lo == pytest.approx(1.0, abs=1e-12)
    assert found.low < 1.0 == found.high and found.low > 0.9


def test_bootstrap_drops_empty_conditions_and_needs_two() -> None:
    p = [0.2, 0.4, 0.6, 0.8]
    lo, hi = step_likeness_interval(p, [0, 0, 5, 5], [5, 0, 5, 5]).percentile
    # Remaining nodes (0,0),(.2,0),(.6,1),(.8,1),(1,1); zero variance so lo == hi == S.
    assert lo == hi == pytest.approx(step_likeness([0.2, 0.6, 0.8], [0.0, 1.0, 1.0]))
    one = step_likeness_interval(p, [0, 0, 3, 0], [0, 0, 5, 0])
    assert all(math.isnan(v) for v in (one.value, one.low, one.high, *one.percentile))


def test_bootstrap_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError):
        step_likeness_interval([0.1, 0.2], [1, 2], [5])
    with pytest.raises(ValueError):
        step_likeness_interval([0.1, 0.2], [6, 2], [5, 5])
    with pytest.raises(ValueError):
        step_likeness_interval([10.0, 20.0], [1, 2], [5, 5])
    with pytest.raises(ValueError):
        step_likeness_interval([0.1, 0.2], [1, 2], [5, 5], confidence=1.5)


# --- the interval `show` reports, the noise floor -------------------------------------------


def test_step_likeness_interval_reports_s_its_floor_and_correction() -> None:
    p, k, n = _sigmoid_counts(100)
    found = step_likeness_interval(p, k, n)
    s = step_likeness(p, k / n)
    assert found.value == s and found.low <= s <= found.high and found.low >= 0.0
    # Its first replicates are the percentile bootstrap's (same seed, same draws).
    redrawn = redraw_binomial(generator(0), np.asarray(n), np.asarray(k) / np.asarray(n), 2000)
    assert found.percentile == percentile_interval(step_likeness_rows(p, redrawn), 0.95)
    assert found.noise_floor == pytest.approx(noise_floor(p, n)) and found.noise_floor > 0.0
    assert 0.0 <= found.corrected <= s  # noise only adds to |r − p|
    assert found == step_likeness_interval(p, k, n)  # seeded
    assert found.method == "bias-aware basic bootstrap"
    # A calibrated-looking curve: its interval reaches 0, the percentile one does not.
    calibrated = step_likeness_interval(GRID, np.round(GRID * 100) + (GRID < 0.5), [100] * 21)
    assert calibrated.low == 0.0 < calibrated.percentile[0]
    assert math.isnan(step_likeness_interval([0.5, 0.6], [1, 0], [2, 0]).value)


def test_noise_floor_is_exact() -> None:
    # Two conditions at p = 0 and 1: no noise there (k is always 0 or n), so the floor is 0.
    assert noise_floor([0.0, 1.0], [10, 10]) == 0.0
    # p = 0.5 alone with n = 2 and flat extension over [0, 1]: |k/2 − x| at the nodes.
    # E|k/2 − 0.5| = 0.5 · 0.5 = 0.25 at p = 0.5, and at 0 and 1 E|k/2 − 0| = E k/2 = 0.5;
    # weights 4·(0.5/2) = 1 at the ends and 2 in the middle: 0.5 + 0.5 + 2 · 0.25 = 1.5.
    assert noise_floor([0.5, 0.5], [2, 2]) == pytest.approx(1.5)
    assert noise_floor(GRID, None) == 0.0
    with pytest.raises(ValueError):
        noise_floor(GRID, [100] * 3)
