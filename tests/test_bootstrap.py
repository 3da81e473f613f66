"""Tests for flipbench.bootstrap: the shared redraws and the percentile interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flipbench.bootstrap import (
    bias_aware_interval,
    check_boot,
    generator,
    multinomial_counts,
    percentile_interval,
    redraw_binomial,
    redraw_shares,
    replicate_interval,
    resample_row_means,
    toward_target,
    wilson_bounds,
)
from flipbench.metrics import wilson_interval


def test_percentile_interval_interpolates_finite_replicates() -> None:
    samples = np.arange(101, dtype=np.float64)
    assert percentile_interval(samples, 0.95) == pytest.approx((2.5, 97.5))
    assert percentile_interval(samples, 0.5) == (25.0, 75.0)


def test_percentile_interval_uses_order_statistics_with_inf() -> None:
    samples = np.array([0.1, 0.2, 0.3, np.inf])
    lo, hi = percentile_interval(samples, 0.5)
    assert (lo, hi) == (0.1, 0.3)  # interpolating towards inf would give inf or NaN
    assert percentile_interval(np.array([1.0, np.inf, np.inf, np.inf]), 0.9)[1] == math.inf


def test_replicate_interval_point_nan_and_spread() -> None:
    point = 0.1 + 0.2  # 0.30000000000000004: replicates that rounded otherwise give the point
    assert replicate_interval(np.full(50, 0.3), point, 0.95) == (point, point)
    assert all(math.isnan(v) for v in replicate_interval(np.array([0.1, np.nan]), 0.1, 0.95))
    assert all(math.isnan(v) for v in replicate_interval(np.full(3, np.nan), math.nan, 0.95))
    assert replicate_interval(np.arange(101.0), 50.0, 0.95) == pytest.approx((2.5, 97.5))


def test_redraws_are_one_vectorised_draw_per_call() -> None:
    shares = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    n = np.array([10, 20, 5])
    counts = multinomial_counts(generator(1), n, shares, 300)
    assert counts.shape == (300, 3, 2)
    assert np.array_equal(counts.sum(axis=2), np.broadcast_to(n, (300, 3)))
    assert np.all(counts[:, 2, 1] == 0)  # a share of 0 is never drawn
    star = redraw_shares(generator(1), n, shares, 300)
    assert np.array_equal(star, counts / n[:, np.newaxis])  # same seed, same draws
    one = redraw_shares(generator(2), 40, np.array([0.25, 0.75]), 100)
    assert one.shape == (100, 2) and np.allclose(one.sum(axis=1), 1.0)
    rates = redraw_binomial(generator(3), n, np.array([0.2, 0.5, 1.0]), 200)
    assert rates.shape == (200, 3) and np.all(rates[:, 2] == 1.0)
    assert np.array_equal(rates * n, np.round(rates * n))  # k / n with integer k


def test_resample_row_means_keeps_replies_whole() -> None:
    rows = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    means = resample_row_means(generator(0), rows, 500)
    assert means.shape == (500, 3)
    # Positions 1 and 2 always move together and against position 3: whole replies resampled.
    assert np.array_equal(means[:, 0], means[:, 1])
    assert np.allclose(means[:, 0] + means[:, 2], 1.0)
    assert np.all(resample_row_means(generator(0), rows[:1], 10) == rows[0])


@pytest.mark.parametrize("seed", [None, -1, 1.5, True, "0"])
def test_generator_needs_a_fixed_integer_seed(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        generator(seed)  # type: ignore[arg-type]


def test_generator_is_numpys_default_rng() -> None:
    assert generator(7).random() == np.random.default_rng(7).random()
    assert generator(np.int64(7)).random() == np.random.default_rng(7).random()


def test_check_boot() -> None:
    check_boot(1, 0.5)
    with pytest.raises(ValueError, match="n_boot"):
        check_boot(0, 0.95)
    for confidence in (0.0, 1.0, 95.0):
        with pytest.raises(ValueError, match="confidence"):
            check_boot(1000, confidence)


def test_wilson_bounds_match_the_scalar_wilson_interval() -> None:
    n = np.array([10, 100, 7])
    for k in ([0, 3, 7], [10, 50, 0], [5, 100, 1]):
        lo, hi = wilson_bounds(np.array(k) / n, n)
        for i in range(3):
            assert (lo[i], hi[i]) == pytest.approx(wilson_interval(k[i], int(n[i])), abs=1e-12)


def test_toward_target_stops_at_the_wilson_interval() -> None:
    n = np.array([100, 100, 100])
    shares = np.array([[0.5, 0.5], [0.9, 0.1], [0.52, 0.48]])
    target = np.array([[0.3, 0.7], [0.3, 0.7], [0.5, 0.5]])
    moved = toward_target(shares, n, target)
    lo, hi = wilson_bounds(shares[:, 1], n)
    # Two categories: the target clipped into the rate's Wilson interval.
    assert moved[:, 1] == pytest.approx(np.clip(target[:, 1], lo, hi))
    assert moved[2] == pytest.approx([0.5, 0.5])  # inside the interval: all the way
    three = toward_target(np.array([[0.2, 0.3, 0.5]]), np.array([40]), np.array([[0.6, 0.4, 0.0]]))
    assert three.sum() == pytest.approx(1.0) and three.min() >= 0.0
    assert 0.2 < three[0, 0] < 0.6 and three[0, 2] > 0.0  # part of the way


def test_bias_aware_interval_allows_for_the_bias() -> None:
    rng = np.random.default_rng(0)
    samples = 1.0 + rng.normal(0.0, 0.1, 4000)  # replicates biased +1 above the point 0
    near = (0.0, 2.0 + rng.normal(0.0, 0.1, 4000))  # the nearest-calibrated model: +2
    lo, hi = bias_aware_interval(0.0, samples, near, 0.95)
    assert lo == pytest.approx(-2.0 - 0.196, abs=0.02)  # point − max bias − upper spread
    assert hi == pytest.approx(0.196, abs=0.02)  # point − min(0, …) − lower spread
    assert bias_aware_interval(0.0, samples, near, 0.95, (0.0, 1.0))[0] == 0.0
    # With no bias this is the basic bootstrap, which here equals the percentile interval.
    plain = rng.normal(0.0, 0.1, 4000)
    lo, hi = bias_aware_interval(0.0, plain, (0.0, plain), 0.95)
    assert (lo, hi) == pytest.approx((-0.196, 0.196), abs=0.02)
    # No noise at all: the point; an undefined replicate: undefined.
    flat = np.full(10, 0.3)
    assert bias_aware_interval(0.3, flat, (0.1, np.full(10, 0.1)), 0.95) == (0.3, 0.3)
    nan = np.array([0.1, np.nan])
    assert all(math.isnan(v) for v in bias_aware_interval(0.1, nan, (0.1, flat), 0.95))
