"""Tests for flipbench.bayes: posteriors, floors, the memory factor γ and the prior fit.

The acceptance of issue 13 (point 2) lives here with real numbers: a synthetic model that is
exactly Bayesian sits at TVD 0 from the posterior and on the posterior floor from θ; a
forgetful model with γ = 0.6 and a Beta(3, 1) prior are recovered inside their intervals; and
the intervals printed as 95 % cover about 95 % in simulation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench.bayes import (
    expanded_level,
    fit_gamma,
    fit_prior,
    kl,
    memory_curve,
    posterior_floor,
    posterior_predictive,
    tvd,
)

THETAS = np.round(np.arange(11) / 10, 1)
NS = (0, 1, 3, 5, 10, 20, 50, 100)


def _chain(rng: np.random.Generator) -> np.ndarray:
    """The spec's posterior chain: 50 flips from θ = 0.75, then 50 from θ = 0.25."""
    return np.concatenate([rng.random(50) < 0.75, rng.random(50) < 0.25]).astype(np.float64)


def _forgetful(
    rng: np.random.Generator, n_seq: int = 20, gamma: float = 0.6
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    seqs = [_chain(rng) for _ in range(n_seq)]
    curves = [np.clip(memory_curve(s, gamma) + rng.normal(0, 0.02, 101), 0, 1) for s in seqs]
    return seqs, curves


def _icl_grid(
    rng: np.random.Generator, alpha0: float, beta0: float, per_theta: int, kappa: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An ICL-like grid: nested sequences per θ, the model Bayesian with Beta(α₀, β₀) + noise.

    The noise is Beta(κ q, κ (1 − q)) around the Bayesian q: mean q exactly and always inside
    [0, 1] (clipped Gaussian noise would bias q near 0 and 1); ``kappa=None`` means no noise.
    """
    heads, tails, p, groups = [], [], [], []
    for i, theta in enumerate(THETAS):
        for j in range(per_theta):
            flips = rng.random(max(NS)) < theta
            for n in NS:
                h = int(flips[:n].sum())
                q = (alpha0 + h) / (alpha0 + beta0 + n)
                heads.append(h)
                tails.append(n - h)
                p.append(q if kappa is None else rng.beta(kappa * q, kappa * (1 - q)))
                groups.append(i * 100 + j)
    return np.array(heads), np.array(tails), np.array(p), np.array(groups)


# --- posterior predictive, TVD, KL ---------------------------------------------------------


def test_posterior_predictive_beta_and_dirichlet() -> None:
    assert posterior_predictive(np.array([3, 1])) == pytest.approx([4 / 6, 2 / 6])
    # per-category concentrations: a Beta(3, 1) prior before any flip
    assert posterior_predictive(np.array([0, 0]), np.array([3.0, 1.0])) == pytest.approx(
        [0.75, 0.25]
    )
    die = posterior_predictive(np.array([[0, 0, 0, 0, 0, 4], [1, 1, 1, 1, 1, 1]]))
    assert die.shape == (2, 6)
    assert die[0] == pytest.approx([0.1] * 5 + [0.5])
    assert die[1] == pytest.approx([1 / 6] * 6)
    with pytest.raises(ValueError):
        posterior_predictive(np.array([-1, 2]))
    with pytest.raises(ValueError):
        posterior_predictive(np.array([1, 2]), 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=2, max_size=8),
    st.floats(0.01, 50.0),
)
def test_posterior_predictive_is_a_distribution(counts: list[int], alpha0: float) -> None:
    pred = posterior_predictive(np.array(counts), alpha0)
    assert pred.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(pred > 0)


_weights = st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5).filter(lambda w: sum(w) > 0)


@settings(max_examples=200, deadline=None)
@given(_weights, _weights)
def test_tvd_is_bounded_and_symmetric(wp: list[float], wq: list[float]) -> None:
    p, q = np.array(wp) / sum(wp), np.array(wq) / sum(wq)
    d = float(tvd(p, q))
    assert -1e-12 <= d <= 1.0 + 1e-12
    assert d == float(tvd(q, p))
    assert float(tvd(p, p)) == 0.0


def test_tvd_values_and_axes() -> None:
    assert float(tvd([1.0, 0.0], [0.0, 1.0])) == 1.0
    assert float(tvd([0.7, 0.3], [0.5, 0.5])) == pytest.approx(0.2)
    assert tvd(np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([0.5, 0.5])) == pytest.approx(
        [0.0, 0.5]
    )


def test_kl_smoothing_is_explicit_and_finite() -> None:
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    forward, backward = float(kl(p, q)), float(kl(q, p))
    assert math.isfinite(forward) and math.isfinite(backward)
    # eps = 1e-6 on q = (1, 0): q' = (1 + 1e-6, 1e-6) / (1 + 2e-6); closed form of the sum
    qs = np.array([1 + 1e-6, 1e-6]) / (1 + 2e-6)
    assert forward == pytest.approx(float(np.sum(p * np.log(p / qs))), rel=1e-12)
    assert forward == pytest.approx(6.2146, abs=1e-4)  # ½ log(½ / 1e-6) + ½ log ½, about
    assert backward == pytest.approx(math.log(2), abs=2e-5)  # nearly the unsmoothed value
    assert float(kl(p, q, eps=1e-3)) < forward  # more smoothing, smaller divergence
    assert float(kl(p, p)) == 0.0
    assert float(kl(np.array([0.2, 0.0, 0.8]), np.array([0.2, 0.0, 0.8]))) == 0.0
    with pytest.raises(ValueError):
        kl(p, q, eps=0.0)


# --- the posterior floor and the synthetic Bayesian -----------------------------------------


def test_posterior_floor_exact_values() -> None:
    assert posterior_floor(0.3, 0) == pytest.approx(0.2)  # the prior 0.5 against θ = 0.3
    assert posterior_floor(0.5, 1) == pytest.approx(1 / 6)  # q is 1/3 or 2/3
    # an independent binomial sum
    n, th = 10, 0.7
    direct = sum(
        math.comb(n, h) * th**h * (1 - th) ** (n - h) * abs((1 + h) / (2 + n) - th)
        for h in range(n + 1)
    )
    assert posterior_floor(th, n) == pytest.approx(direct, rel=1e-12)
    assert posterior_floor(0.5, 10) == pytest.approx(0.1025390625, rel=1e-12)
    # k = 6: a float θ is the first face, the others share 1 − θ; the same as passing it whole
    assert posterior_floor(0.5, 10, k=6) == pytest.approx(
        posterior_floor(np.array([0.5] + [0.1] * 5), 10)
    )
    assert posterior_floor(0.9, 1000) < 0.01  # it falls like 1 / sqrt(N)
    with pytest.raises(ValueError):
        posterior_floor(1.2, 3)


@pytest.mark.parametrize(("theta", "n"), [(0.1, 1), (0.5, 5), (0.8, 20), (0.3, 100)])
def test_a_bayesian_model_sits_on_the_posterior_floor(theta: float, n: int) -> None:
    """Predictions that are the posterior predictive: TVD 0 to it, the floor to θ (MC)."""
    rng = np.random.default_rng(13)
    heads = rng.binomial(n, theta, size=40_000)
    counts = np.stack([heads, n - heads], axis=1)
    model = posterior_predictive(counts)  # the synthetic model's P(heads), P(tails)
    assert np.all(tvd(model, posterior_predictive(counts)) == 0.0)
    to_theta = tvd(model, np.array([theta, 1 - theta]))
    se = to_theta.std() / math.sqrt(to_theta.size)
    assert abs(to_theta.mean() - posterior_floor(theta, n)) < 4 * se


def test_a_bayesian_die_sits_on_the_dirichlet_floor() -> None:
    rng = np.random.default_rng(14)
    theta = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    counts = rng.multinomial(20, theta, size=40_000)
    to_theta = tvd(posterior_predictive(counts), theta)
    se = to_theta.std() / math.sqrt(to_theta.size)
    assert abs(to_theta.mean() - posterior_floor(theta, 20)) < 4 * se


# --- the memory model and γ -----------------------------------------------------------------


def test_memory_curve_by_hand() -> None:
    flips = np.array([1, 1, 0])
    # γ = 0.5: (α, β) = (1.5, 0.5 -> 1), (1.75, 0.25 -> 1), (0.875 -> 1, 1.125)
    assert memory_curve(flips, 0.5) == pytest.approx([0.5, 0.6, 1.75 / 2.75, 1 / 2.125])
    # γ = 1 is the exact Beta(1, 1) posterior after every prefix
    seq = np.random.default_rng(3).integers(0, 2, 40)
    h = np.concatenate([[0], np.cumsum(seq)])
    assert memory_curve(seq, 1.0) == pytest.approx((1 + h) / (2 + np.arange(41)))
    # γ = 0: one flip of weight 1 floored against 1: always 0.5; prefix 0 is the prior mean
    assert np.all(memory_curve(seq, 0.0, alpha0=3.0) == np.r_[0.75, np.full(40, 0.5)])
    with pytest.raises(ValueError):
        memory_curve(np.array([0, 2]), 0.5)
    with pytest.raises(ValueError):
        memory_curve(flips, 1.5)


def test_fit_gamma_recovers_exact_and_noisy_forgetting() -> None:
    rng = np.random.default_rng(7)
    seqs = [_chain(rng) for _ in range(5)]
    exact = fit_gamma(seqs, [memory_curve(s, 0.35) for s in seqs], n_boot=100)
    assert exact.gamma == pytest.approx(0.35, abs=1e-4)
    assert exact.l1 < 1e-4
    seqs, curves = _forgetful(np.random.default_rng(8))
    fit = fit_gamma(seqs, curves)  # the defaults: 1,000 replicates
    assert abs(fit.gamma - 0.6) <= 0.05
    assert fit.low <= 0.6 <= fit.high
    assert fit.high - fit.low < 0.02  # 20 sequences of 101 readings pin it down
    assert fit.l1 == pytest.approx(0.016, abs=0.002)  # E|N(0, 0.02)| = 0.016
    assert (fit.n_sequences, fit.confidence) == (20, 0.95)


def test_fit_gamma_skips_missing_readings_and_mixed_lengths() -> None:
    rng = np.random.default_rng(9)
    seqs = [_chain(rng)[: 60 + 10 * i] for i in range(4)]
    curves = [memory_curve(s, 0.8) for s in seqs]
    curves[0][5:20] = np.nan  # readings below the coverage threshold, say
    fit = fit_gamma(seqs, curves, n_boot=50)
    assert fit.gamma == pytest.approx(0.8, abs=1e-4)
    with pytest.raises(ValueError):
        fit_gamma(seqs, [c[:-1] for c in curves])
    with pytest.raises(ValueError):
        fit_gamma(seqs, curves, confidence=95)


def test_expanded_level_widens_for_few_units() -> None:
    assert expanded_level(0.95, 20) == pytest.approx(0.9682, abs=1e-4)  # 1.6 %, 98.4 %
    assert expanded_level(0.95, 33) == pytest.approx(0.9614, abs=1e-4)
    assert expanded_level(0.95, 100_000) == pytest.approx(0.95, abs=1e-4)
    assert expanded_level(0.95, 1) == 0.95


def test_gamma_interval_coverage() -> None:
    """100 simulated forgetful models (γ = 0.6): the 95 % interval covers 0.6 in >= 90 %."""
    hits = 0
    for rep in range(100):
        seqs, curves = _forgetful(np.random.default_rng(1000 + rep))
        fit = fit_gamma(seqs, curves, n_boot=200, seed=rep, grid=201)
        hits += fit.low <= 0.6 <= fit.high
    print(f"gamma interval coverage: {hits / 100:.2f}")
    assert hits >= 90


# --- the prior (α₀, β₀) ---------------------------------------------------------------------


def test_fit_prior_recovers_an_exact_bayesian() -> None:
    h, t, p, g = _icl_grid(np.random.default_rng(4), 3.0, 1.0, per_theta=2, kappa=None)
    fit = fit_prior(h, t, p, g, n_boot=50)
    assert fit.alpha0 == pytest.approx(3.0, rel=1e-6)
    assert fit.beta0 == pytest.approx(1.0, rel=1e-6)


def test_fit_prior_recovers_three_one_inside_its_interval() -> None:
    from scipy.optimize import minimize

    h, t, p, g = _icl_grid(np.random.default_rng(5), 3.0, 1.0, per_theta=4, kappa=100.0)
    fit = fit_prior(h, t, p, g)
    assert fit.alpha_low <= 3.0 <= fit.alpha_high
    assert fit.beta_low <= 1.0 <= fit.beta_high
    assert fit.alpha_high - fit.alpha_low < 1.0  # informative, not [1e-3, 1e5]
    assert fit.n_conditions == len(THETAS) * 4 * len(NS)

    def nll(u: np.ndarray) -> float:
        a, b = np.exp(u)
        q = (a + h) / (a + b + h + t)
        return float(-(p * np.log(q) + (1 - p) * np.log(1 - q)).sum())

    ref = np.exp(minimize(nll, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-9}).x)
    assert (fit.alpha0, fit.beta0) == pytest.approx(tuple(ref), rel=1e-5)


def test_fit_prior_of_a_model_that_ignores_the_evidence_hits_the_box() -> None:
    h, t, _, g = _icl_grid(np.random.default_rng(6), 1.0, 1.0, per_theta=2, kappa=None)
    fit = fit_prior(h, t, np.full(h.size, 0.7), g, n_boot=20)
    assert fit.alpha0 > 1e4 and fit.alpha0 / (fit.alpha0 + fit.beta0) == pytest.approx(0.7, 1e-3)


def test_prior_interval_coverage() -> None:
    """100 simulated grids of a noisy Beta(3, 1) model: each interval covers in >= 90 %."""
    hit_a = hit_b = 0
    for rep in range(100):
        h, t, p, g = _icl_grid(np.random.default_rng(5000 + rep), 3.0, 1.0, 3, kappa=50.0)
        fit = fit_prior(h, t, p, g, n_boot=200, seed=rep)
        hit_a += fit.alpha_low <= 3.0 <= fit.alpha_high
        hit_b += fit.beta_low <= 1.0 <= fit.beta_high
    print(f"prior interval coverage: alpha {hit_a / 100:.2f}, beta {hit_b / 100:.2f}")
    assert hit_a >= 90 and hit_b >= 90
