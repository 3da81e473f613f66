"""Tests for flipbench.distfit and flipbench.curves: hand-computed numbers, independent
scipy computations, degenerate inputs, strict JSON, and the paper's released D = 10 data."""

from __future__ import annotations

import json
import math
from math import comb
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from flipbench.curves import position_curves, response_curve, word_bias
from flipbench.distfit import (
    CategoricalFit,
    Estimate,
    categorical_fit,
    count_histogram,
    pool_sparse_cells,
)
from flipbench.gaussfit import INTEGER_SHARE_MIN, discretised_normal_test, gaussian_fit
from flipbench.metrics import step_likeness, wilson_interval
from tests.paper_data import DATA

DIGITS = [f"digit_{j}" for j in range(1, 11)]


def _strict(result: Any) -> dict[str, Any]:
    """to_dict() must survive json.dumps without NaN/inf; return the round-tripped dict."""
    out: dict[str, Any] = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    return out


def _binomial_replies(flips: int) -> np.ndarray:
    """comb(D, k) replies with k ones for every k: a histogram exactly n * Binomial(D, .5)."""
    rows = [[1] * k + [0] * (flips - k) for k in range(flips + 1) for _ in range(comb(flips, k))]
    return np.array(rows)


# --- pooling and the count histogram ---------------------------------------------------------


def test_pooling_rule_by_hand() -> None:
    # [1,1,4,4.5,20,4,1]: 0+1 -> 2; 5+6 -> 5; 2+4 -> 6; 4.5 joins its smaller neighbour 6.
    assert pool_sparse_cells([1, 1, 4, 4.5, 20, 4, 1]) == [(0, 3), (4, 4), (5, 6)]
    assert pool_sparse_cells([1.0, 1.0, 1.0]) == [(0, 2)]  # too few: one bin, no test
    assert pool_sparse_cells([5.0, 6.0]) == [(0, 0), (1, 1)]


def test_perfect_binomial_histogram() -> None:
    h = count_histogram(_binomial_replies(10), 0.5)
    assert h.n == 1024
    assert h.observed == [comb(10, k) for k in range(11)]
    np.testing.assert_allclose(h.expected, h.observed, rtol=1e-12)
    assert h.bins == [(0, 1), *[(k, k) for k in range(2, 9)], (9, 10)]  # tails 1 + 10 pooled
    assert h.df == 8
    assert h.g_stat == pytest.approx(0.0, abs=1e-9)
    assert h.chi2_stat == pytest.approx(0.0, abs=1e-9)
    assert h.g_pvalue == pytest.approx(1.0) and h.chi2_pvalue == pytest.approx(1.0)
    # Sample variance with ddof = 1 is exactly D p q * n / (n - 1) here.
    assert h.variance_ratio.value == pytest.approx(1024 / 1023, rel=1e-12)
    assert h.variance_ratio.low < 1.0 < h.variance_ratio.high
    assert h.mean_ones == pytest.approx(5.0)


def test_identical_replies_have_zero_variance_and_tiny_pvalue() -> None:
    replies = np.tile([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], (1000, 1))
    h = count_histogram(replies, 0.5)
    assert h.variance_ratio == Estimate(0.0, 0.0, 0.0)
    e5 = 1000 * comb(10, 5) / 1024  # every reply sits in the k = 5 cell
    assert h.g_stat == pytest.approx(2 * 1000 * math.log(1000 / e5), rel=1e-9)  # 2804.3
    assert h.chi2_stat == pytest.approx(1000**2 / e5 - 1000, rel=1e-9)  # sum O^2/E - n
    assert h.g_pvalue < 1e-300 and h.chi2_pvalue < 1e-300


def test_histogram_tests_match_scipy_power_divergence() -> None:
    rng = np.random.default_rng(7)
    replies = (rng.random((300, 20)) < 0.3).astype(int)
    h = count_histogram(replies, 0.3)
    g = stats.power_divergence(h.bin_observed, h.bin_expected, lambda_="log-likelihood")
    x2 = stats.power_divergence(h.bin_observed, h.bin_expected, lambda_="pearson")
    assert h.g_stat == pytest.approx(g.statistic, rel=1e-9)
    assert h.g_pvalue == pytest.approx(g.pvalue, rel=1e-9)
    assert h.chi2_stat == pytest.approx(x2.statistic, rel=1e-9)
    assert h.chi2_pvalue == pytest.approx(x2.pvalue, rel=1e-9)
    assert min(h.bin_expected) >= 5.0
    assert sum(h.bin_observed) == 300
    ks = np.arange(21)
    var = np.var(replies.sum(axis=1), ddof=1)
    assert h.variance_ratio.value == pytest.approx(var / (20 * 0.3 * 0.7), rel=1e-12)
    assert h.g_pvalue > 0.001  # genuinely binomial flips are not rejected
    assert h.mean_ones == pytest.approx(float(np.dot(h.observed, ks)) / 300)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_degenerate_binomial(p: float) -> None:
    ok = np.full((50, 10), int(p))
    h = count_histogram(ok, p)
    assert h.degenerate and h.impossible == 0
    assert (h.g_stat, h.g_pvalue, h.chi2_pvalue) == (0.0, 1.0, 1.0)
    d = _strict(h)
    assert d["variance_ratio"]["value"] is None  # 0 / 0: undefined; JSON null (one NaN policy)

    bad = ok.copy()
    bad[0, 3] = 1 - int(p)  # one reply the request makes impossible
    h = count_histogram(bad, p)
    assert h.impossible == 1
    assert h.g_pvalue == 0.0 and h.chi2_pvalue == 0.0
    assert math.isinf(h.g_stat) and math.isinf(h.variance_ratio.value)
    d = _strict(h)
    assert d["g_stat"] is None and d["g_pvalue"] == 0.0 and d["impossible"] == 1
    assert sum(d["bin_observed"]) == 50 and sorted(d["bin_observed"]) == [1, 49]


def test_histogram_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        count_histogram([[0, 2]], 0.5)
    with pytest.raises(ValueError, match="fractions"):
        count_histogram([[0, 1]], 45.0)
    with pytest.raises(ValueError, match="no replies"):
        count_histogram(np.zeros((0, 10)), 0.5)


def _released_histograms(name: str) -> dict[tuple[str, float], Any]:
    path = DATA / name
    assert path.is_file(), f"released data missing: {path}"  # fail, never skip
    df = pd.read_csv(path, dtype=str)  # raw_text holds quoted newlines; trailing empty columns
    out = {}
    for (model, p), group in df.groupby(["model", "p"]):
        replies = group[DIGITS].astype(int).to_numpy()
        out[str(model), int(str(p)) / 100] = count_histogram(replies, int(str(p)) / 100)
    return out


def test_released_d10_data_is_under_dispersed() -> None:
    hists = _released_histograms("fig3_d10_flips.csv")
    hists |= _released_histograms("fig3_d10_flips_claude.csv")
    assert len(hists) == 6
    for (model, p), h in hists.items():
        print(f"{model} p={p}: n={h.n} variance ratio {h.variance_ratio}")
        assert h.n == 1000 and h.flips == 10
        # Independent flips give 1; the models give < 0.1 (Claude and Qwen at p=.45: 0).
        assert h.variance_ratio.value < 0.1
        assert h.variance_ratio.high < 0.1
        assert h.g_pvalue < 1e-100
    kimi = hists["moonshotai/kimi-k2-0905", 0.15].variance_ratio.value
    assert kimi == pytest.approx(0.0561346, abs=1e-6)
    assert hists["qwen/qwen3-vl-8b-instruct", 0.45].variance_ratio.value == 0.0


# --- categorical / ternary ------------------------------------------------------------------


def ternary_fit(q: float, observed: list[float], *, exact: bool = False) -> CategoricalFit:
    """The ternary deck's request at P("2") = q: (P("0"), P("1"), P("2")) = (0.6 − q, 0.4, q)."""
    return categorical_fit(observed, (max(0.0, 0.6 - q), 0.4, q), exact=exact)


def test_identical_distributions_have_zero_kl() -> None:
    fit = ternary_fit(0.3, [0.3, 0.4, 0.3], exact=True)
    assert fit.kl.value == pytest.approx(0.0, abs=1e-12)
    assert fit.kl.low == fit.kl.value == fit.kl.high  # exact: a point
    assert fit.tv.value == pytest.approx(0.0, abs=1e-12)
    assert fit.n is None and fit.outside_mass == pytest.approx(0.0, abs=1e-12)
    fit = ternary_fit(0.3, [300, 400, 300])
    assert fit.kl.value == pytest.approx(0.0, abs=1e-12)
    assert fit.kl.low >= 0.0 and fit.kl.high > 0.0  # sampling noise only raises KL


def test_kl_tv_and_rates_by_hand() -> None:
    fit = ternary_fit(0.2, [60, 20, 20])  # requested (.4, .4, .2)
    hand = 0.6 * math.log(0.6 / 0.4) + 0.2 * math.log(0.2 / 0.4)
    assert fit.kl.value == pytest.approx(hand, rel=1e-12)  # 0.104650
    assert fit.kl.value == pytest.approx(stats.entropy([0.6, 0.2, 0.2], [0.4, 0.4, 0.2]))
    assert fit.kl.low < fit.kl.value < fit.kl.high
    assert fit.tv.value == pytest.approx(0.2)
    for est, k in zip(fit.rates, (60, 20, 20), strict=True):
        assert (est.low, est.high) == wilson_interval(k, 100)
        assert est.value == k / 100


def test_kl_infinite_when_requested_zero_has_mass() -> None:
    fit = ternary_fit(0.0, [50, 40, 10])  # requested (.6, .4, 0) but 10 % said "2"
    assert fit.kl_infinite and math.isinf(fit.kl.value)
    assert fit.tv.value == pytest.approx(0.1)  # finite alternative for plotting
    d = _strict(fit)
    assert d["kl"]["value"] is None  # the flag below says why
    assert d["kl_infinite"] is True
    ok = ternary_fit(0.0, [60, 40, 0])  # mass only where requested: finite
    assert not ok.kl_infinite and math.isfinite(ok.kl.high)


def test_exact_mode_renormalises_and_reports_outside_mass() -> None:
    fit = categorical_fit([0.3, 0.4, 0.2], [0.5, 0.4, 0.1], exact=True)
    assert fit.outside_mass == pytest.approx(0.1)
    assert [e.value for e in fit.rates] == pytest.approx([1 / 3, 4 / 9, 2 / 9])
    assert all(e.low == e.value == e.high for e in fit.rates)
    with pytest.raises(ValueError, match="integers"):
        categorical_fit([0.3, 0.4, 0.3], [0.3, 0.4, 0.3])
    with pytest.raises(ValueError, match="sum"):
        categorical_fit([1, 1], [0.3, 0.3])


# --- Gaussian ------------------------------------------------------------------------------


def test_constant_100_rejects_normal() -> None:
    fit = gaussian_fit(np.full(200, 100.0))
    assert fit.ks_stat == pytest.approx(0.5)  # the empirical cdf jumps 0 -> 1 where Phi = .5
    assert fit.ks_pvalue < 1e-20
    assert fit.mean == Estimate(100.0, 100.0, 100.0)
    assert fit.sd == Estimate(0.0, 0.0, 0.0)
    assert fit.integer_share.value == 1.0
    assert fit.gof_test == "chi2_discretised" and fit.gof_pvalue < 1e-20
    centre = fit.bin_counts.index(200)
    assert fit.bin_edges[centre : centre + 2] == [97.5, 102.5]
    _strict(fit)


def test_normal_sample_fits_and_intervals_match_scipy() -> None:
    x = np.random.default_rng(3).normal(100.0, 15.0, 2000)
    fit = gaussian_fit(np.append(x, [math.nan, math.inf]))
    assert fit.n == 2000 and fit.n_dropped == 2
    assert fit.ks_pvalue > 0.01
    lo, hi = stats.t.interval(0.95, 1999, loc=x.mean(), scale=stats.sem(x))
    assert (fit.mean.low, fit.mean.high) == pytest.approx((lo, hi), rel=1e-12)
    assert fit.mean.low < 100.0 < fit.mean.high
    assert fit.sd.low < 15.0 < fit.sd.high
    assert fit.integer_share.value == 0.0
    assert sum(fit.bin_counts) + fit.below + fit.above == 2000
    width = np.diff(fit.bin_edges)
    assert np.allclose(width, 5.0)
    centre = len(fit.bin_counts) // 2
    assert fit.normal_density[centre] == pytest.approx(1 / (15 * math.sqrt(2 * math.pi)))
    assert float(np.dot(fit.bin_density, width)) == pytest.approx(
        sum(fit.bin_counts) / 2000, rel=1e-12
    )
    assert fit.bin_edges[0] == 22.5 and fit.bin_edges[-1] == 177.5  # 100 -+ (15 + .5) * 5
    inside = stats.norm.cdf(177.5, 100, 15) - stats.norm.cdf(22.5, 100, 15)
    assert sum(fit.expected_counts) == pytest.approx(2000 * inside, rel=1e-9)


def test_integer_share() -> None:
    fit = gaussian_fit([100, 100.5, 101, 99.25])
    assert fit.integer_share.value == 0.5
    assert (fit.integer_share.low, fit.integer_share.high) == wilson_interval(2, 4)


def _rejection_rates(
    mean: float, sd: float, sizes: tuple[int, ...], reps: int, seed: int
) -> dict[int, float]:
    """Share of ``reps`` rounded N(mean, sd) samples of each size that the chi-square against
    the discretised N(100, 15) rejects at alpha 0.05; in chunks of 2e6 draws (memory)."""
    rng = np.random.default_rng(seed)
    rates = {}
    for n in sizes:
        chunk, rejected = max(1, 2_000_000 // n), 0
        for start in range(0, reps, chunk):
            x = np.round(rng.normal(mean, sd, (min(chunk, reps - start), n)))
            _, df, p = discretised_normal_test(x)
            assert df > 0
            rejected += int(np.sum(p < 0.05))
        rates[n] = rejected / reps
    return rates


def test_discretised_normal_test_has_the_right_size_on_rounded_draws() -> None:
    """Issue 11: the continuous KS rejects ideal rounded N(100, 15) draws 20 % of the time at
    n = 1,000 and always at 10,000; the chi-square against the discretised normal keeps its
    size (measured 0.05-0.06 with 4,000 replicates)."""
    size = _rejection_rates(100.0, 15.0, (100, 1000, 10_000), reps=1000, seed=11)
    print(f"size at alpha 0.05 on rounded N(100, 15), 1,000 replicates: {size}")
    assert all(0.03 <= rate <= 0.07 for rate in size.values()), f"size at alpha 0.05: {size}"


def test_discretised_normal_test_rejects_a_shifted_or_narrow_normal() -> None:
    shifted = _rejection_rates(103.0, 15.0, (1000,), reps=200, seed=12)[1000]
    narrow = _rejection_rates(100.0, 10.0, (1000,), reps=200, seed=13)[1000]
    power = f"power at n = 1,000: rounded N(103, 15) {shifted}, rounded N(100, 10) {narrow}"
    print(power)
    assert shifted >= 0.75 and narrow >= 0.99, power


def test_discretised_normal_test_matches_a_direct_computation() -> None:
    x = np.round(np.random.default_rng(4).normal(100, 15, 500))
    x[:3] = [-40.0, 250.0, 100.4]  # beyond the cells (100 -+ 6 * 15), and one rounded to 100
    stat, df, p = discretised_normal_test(x)
    k = np.arange(10, 191)  # cell 10 also holds every k below, cell 190 every k above
    upper = np.append(stats.norm.cdf(k[:-1] + 0.5, 100, 15), 1.0)
    lower = np.insert(stats.norm.cdf(k[1:] - 0.5, 100, 15), 0, 0.0)
    expected = 500 * (upper - lower)
    observed = np.histogram(np.clip(np.floor(x + 0.5), 10, 190), bins=np.arange(9.5, 191))[0]
    bins = pool_sparse_cells(expected)
    obs = [observed[a : b + 1].sum() for a, b in bins]
    exp = [expected[a : b + 1].sum() for a, b in bins]
    want = stats.chisquare(obs, exp)
    assert df == len(bins) - 1 and min(exp) >= 5.0
    assert float(stat) == pytest.approx(want.statistic, rel=1e-9)
    assert float(p) == pytest.approx(want.pvalue, rel=1e-9)
    assert np.isnan(discretised_normal_test(np.full(14, 100.0))[2])  # a single bin: no test
    with pytest.raises(ValueError, match="finite"):
        discretised_normal_test([100.0, math.nan])


def test_gaussian_fit_tests_integer_answers_against_the_discretised_normal() -> None:
    x = np.round(np.random.default_rng(5).normal(100, 15, 10_000))
    fit = gaussian_fit(x)
    assert fit.ks_stat > 0.013 and fit.ks_pvalue < 1e-3  # the continuous KS rejects ideal draws
    stat, df, p = discretised_normal_test(x)
    assert (fit.gof_test, fit.gof_stat, fit.gof_df, fit.gof_pvalue) == (
        "chi2_discretised", float(stat), df, float(p)
    )  # fmt: skip
    assert fit.gof_pvalue > 0.05
    assert _strict(fit)["gof_df"] == df


def test_gaussian_fit_keeps_the_ks_for_non_integer_answers() -> None:
    x = np.random.default_rng(6).normal(100, 15, 1000)
    x[:49] = np.round(x[:49])  # 4.9 % integers: the KS keeps its size
    fit = gaussian_fit(x)
    assert fit.integer_share.value < INTEGER_SHARE_MIN
    assert (fit.gof_test, fit.gof_stat, fit.gof_df, fit.gof_pvalue) == (
        "ks", fit.ks_stat, None, fit.ks_pvalue
    )  # fmt: skip
    assert _strict(fit)["gof_df"] is None
    x[49] = round(x[49])  # 5 %: integer answers, the others rounded half up
    fit = gaussian_fit(x)
    assert fit.gof_test == "chi2_discretised"
    assert fit.gof_stat == float(discretised_normal_test(np.floor(x + 0.5))[0])
    assert gaussian_fit([85, 100, 115, 100, 92, 108]).gof_test == "ks"  # too few for chi-square


# --- D flips per reply: positions, mean, running mean ----------------------------------------


def test_every_position_a_step_gives_that_steps_s_at_every_j() -> None:
    grid = [round(0.1 * i, 10) for i in range(11)]
    replies = {p: np.full((20, 10), int(p > 0.5)) for p in grid}
    pc = position_curves(replies, n_boot=200)
    assert step_likeness(grid, [float(p > 0.5) for p in grid]) == pytest.approx(1.0)
    for est in [*pc.s_position, pc.s_mean, *pc.s_running]:
        assert est.value == pytest.approx(1.0)
        assert (est.low, est.high) == pytest.approx((1.0, 1.0))  # no spread to resample
    assert len(pc.s_running) == 10 and pc.flips == 10
    _strict(pc)


def test_position_rates_and_running_mean_by_hand() -> None:
    replies = {
        0.2: [[1, 0], [0, 0], [1, 1], [0, 0]],  # r = (.5, .25)
        0.8: [[1, 1], [1, 1], [0, 1], [1, 1]],  # r = (.75, 1)
    }
    pc = position_curves(replies, n_boot=300)
    assert [[e.value for e in row] for row in pc.rates] == [[0.5, 0.25], [0.75, 1.0]]
    assert (pc.rates[0][1].low, pc.rates[0][1].high) == wilson_interval(1, 4)
    assert [e.value for e in pc.mean_rate] == [0.375, 0.875]
    assert pc.s_position[0].value == pytest.approx(step_likeness([0.2, 0.8], [0.5, 0.75]))
    assert pc.s_position[1].value == pytest.approx(step_likeness([0.2, 0.8], [0.25, 1.0]))
    assert pc.s_running[0].value == pc.s_position[0].value  # J = 1 is position 1
    assert pc.s_running[1].value == pytest.approx(pc.s_mean.value)  # J = D is Mean(r)
    assert pc.s_mean.value == pytest.approx(step_likeness([0.2, 0.8], [0.375, 0.875]))


def test_mean_rate_bootstrap_matches_binomial_width() -> None:
    # D = 1, 200 of 400 ones: the reply bootstrap of the rate has sd sqrt(.25 / 400) = .025.
    replies = {0.3: np.repeat([[1], [0]], 200, axis=0), 0.7: np.ones((400, 1), int)}
    pc = position_curves(replies, n_boot=4000)
    est = pc.mean_rate[0]
    assert est.value == 0.5
    assert est.low == pytest.approx(0.5 - 1.96 * 0.025, abs=0.006)
    assert est.high == pytest.approx(0.5 + 1.96 * 0.025, abs=0.006)


def test_position_curves_rejects_mixed_d() -> None:
    with pytest.raises(ValueError, match="same number"):
        position_curves({0.1: [[0, 1]], 0.5: [[0, 1, 1]]})


# --- games ---------------------------------------------------------------------------------


def test_response_curve_s_by_hand() -> None:
    x = [0.5, 0.01, 0.99, 0.4, 0.6]
    k = [50, 0, 100, 0, 100]
    curve = response_curve(x, k, [100] * 5, n_boot=500)
    assert curve.x == [0.01, 0.4, 0.5, 0.6, 0.99]
    assert [e.value for e in curve.rates] == [0.0, 0.0, 0.5, 1.0, 1.0]
    # |r - x| at 0, .01, .4, .5, .6, .99, 1 = 0, .01, .4, 0, .4, .01, 0; trapezoids sum to .2.
    assert curve.s.value == pytest.approx(0.8)
    assert curve.s.low <= 0.8 <= curve.s.high
    exact = response_curve(x, [0.5, 0.0, 1.0, 0.0, 1.0])
    assert (exact.s.value, exact.s.low, exact.s.high) == pytest.approx((0.8, 0.8, 0.8))
    assert exact.n is None and all(e.low == e.high for e in exact.rates)
    with pytest.raises(ValueError, match="integers"):
        response_curve(x, [101, 0, 0, 0, 0], [100] * 5)


# --- word and position bias ----------------------------------------------------------------


def _pairs(fwd: int, rev: int) -> dict[tuple[str, str], tuple[float, int | None]]:
    return {
        (pair, order): (k, 100)
        for pair in ("cat/dog", "sun/moon")
        for order, k in (("forward", fwd), ("reverse", rev))
    }


def test_always_first_word_is_pure_position_bias() -> None:
    wb = word_bias(_pairs(100, 100))
    assert wb.mean_abs_position_bias == Estimate(0.5, 0.5, 0.5)
    assert all(c.position_bias.value == 0.5 for c in wb.conditions)
    lo = wilson_interval(100, 100)[0]  # 0.963
    for pb in wb.pairs:  # red share 1 (forward) and 0 (reverse): no semantic bias
        assert pb.red_share.value == 0.5 and pb.semantic_bias.value == 0.0
        assert pb.red_share.low == pytest.approx(0.5 - (1 - lo) / 2)
        assert pb.red_share.high == pytest.approx(0.5 + (1 - lo) / 2)
    _strict(wb)


def test_always_red_word_is_pure_semantic_bias() -> None:
    wb = word_bias(_pairs(100, 0))
    assert wb.mean_abs_position_bias.value == 0.5
    assert [c.position_bias.value for c in wb.conditions] == [0.5, -0.5, 0.5, -0.5]
    lo = wilson_interval(100, 100)[0]
    for pb in wb.pairs:
        assert pb.semantic_bias.value == 0.5
        assert pb.red_share.low == pytest.approx(1 - (1 - lo) / math.sqrt(2))  # MOVER
        assert pb.red_share.high == 1.0


def test_word_bias_exact_mode_and_missing_order() -> None:
    counts: dict[tuple[str, str], tuple[float, int | None]] = {
        ("1/0", "forward"): (0.7, None),
        ("1/0", "reverse"): (0.6, None),
        ("day/night", "forward"): (0.5, None),  # no reverse: no pair result
    }
    wb = word_bias(counts)
    assert [pb.pair for pb in wb.pairs] == ["1/0"]
    red = wb.pairs[0].red_share  # (.7 + (1 - .6)) / 2, a point
    assert (red.value, red.low, red.high) == pytest.approx((0.55, 0.55, 0.55))
    assert wb.mean_abs_position_bias.value == pytest.approx(0.1)  # (.2 + .1 + 0) / 3
    assert wb.mean_abs_position_bias.low == wb.mean_abs_position_bias.high
    with pytest.raises(ValueError, match="order"):
        word_bias({("a/b", "backward"): (1, 2)})


def test_chi_square_of_counts_against_the_request() -> None:
    fit = categorical_fit([30, 20, 50], [0.25, 0.25, 0.5])
    chi = fit.chi_square
    assert chi is not None and chi.df == 2 and chi.min_expected == 25
    hand = (30 - 25) ** 2 / 25 + (20 - 25) ** 2 / 25 + 0  # = 2.0
    assert chi.stat == pytest.approx(hand)
    assert chi.p_value == pytest.approx(stats.chisquare([30, 20, 50], [25, 25, 50]).pvalue)
    # an answer the request declares impossible rejects it outright; it is left out of df
    bad = categorical_fit([10, 90, 0], [0.0, 1.0, 0.0]).chi_square
    assert bad is not None and math.isinf(bad.stat) and bad.p_value == 0.0 and bad.df == 0
    good = categorical_fit([0, 90, 0], [0.0, 1.0, 0.0]).chi_square
    assert good is not None and (good.stat, good.p_value) == (0.0, 1.0)
    assert categorical_fit([0.2, 0.8], [0.5, 0.5], exact=True).chi_square is None
