"""Do the intervals cover? Coverage of S's interval, of the categorical kind's TV and KL, and of
the benchmark's total, parts and sub-metrics, by simulation.

A model with known rates is sampled many times (seeded, N = 100 answers per condition); each
sample gets its interval exactly as `show` and `bench` compute it, and the share of intervals
that contain the true value is the measured coverage (nominal 0.95; each test prints it, see
`pytest -s`, and names it in its assertion). The plain percentile interval is measured beside
it: near calibration it misses (docs/experiments.md, "Intervals", has the full table). Fewer
replicates than the defaults keep these tests fast; they do not change the method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_scoring import BIO, BUS, GRID, MP, PAIRS, QGRID, perfect

from flipbench.bootstrap import generator, percentile_interval, redraw_shares
from flipbench.curves import position_curves
from flipbench.distfit import categorical_fit
from flipbench.metrics import noise_floor, step_likeness, step_likeness_interval
from flipbench.scoring import (
    GAMES,
    BenchmarkParts,
    Cell,
    WordCell,
    bootstrap_benchmark,
    bootstrap_metrics,
    noise_floor_benchmark,
    score_benchmark,
)

P = np.array(GRID)
N = 100
NOMINAL, REQUIRED = 0.95, 0.93


def logistic(k: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: 1.0 / (1.0 + np.exp(-k * (np.asarray(x) - 0.5)))


# True curves r(p) on the 21-point grid: logistic steps of three steepnesses (S = 0.38, 0.66,
# 0.85; each crosses the diagonal at p = 0.5 and near 0 and 1), a two-level step that crosses
# it at three grid points (0.25, 0.5, 0.75, where noise biases |r − p| most), and r = p.
CURVES = {
    "logistic S=0.38": (logistic(8.7563)(P), 0.38),
    "logistic S=0.66": (logistic(16.636)(P), 0.66),
    "logistic S=0.85": (logistic(42.15)(P), 0.85),
    "step crossing the diagonal": (np.where(P < 0.5, 0.25, np.where(P > 0.5, 0.75, 0.5)), 0.45),
    "calibrated r = p": (P.copy(), 0.0),
}


def _covered(low: float, high: float, truth: float) -> bool:
    return low - 1e-9 <= truth <= high + 1e-9


@pytest.mark.parametrize("name", list(CURVES))
def test_the_interval_of_s_covers(name: str) -> None:
    rates, nominal_s = CURVES[name]
    truth = step_likeness(P, rates)
    assert truth == pytest.approx(nominal_s, abs=5e-4)
    rng = np.random.default_rng(20251)
    sims = rng.binomial(N, rates, size=(300, P.size))
    n = np.full(P.size, N)
    found = [step_likeness_interval(P, k, n, n_boot=500, seed=i) for i, k in enumerate(sims)]
    coverage = np.mean([_covered(f.low, f.high, truth) for f in found])
    percentile = np.mean([_covered(*f.percentile, truth) for f in found])
    width = np.mean([f.high - f.low for f in found])
    message = (
        f"S = {truth:.3f} ({name}), N = {N}, {len(found)} runs: coverage {coverage:.3f}"
        f" (width {width:.3f}); percentile interval {percentile:.3f}"
    )
    print(message)
    assert coverage >= REQUIRED, message
    # The noise-corrected S is much closer to the truth than the raw one near calibration.
    raw, corrected = np.mean([f.value for f in found]), np.mean([f.corrected for f in found])
    assert abs(corrected - truth) <= abs(raw - truth) + 1e-3, (raw, corrected)


def test_the_noise_floor_of_s_is_what_a_calibrated_model_scores() -> None:
    n = np.full(P.size, N)
    floor = noise_floor(P, n)
    draws = np.random.default_rng(3).binomial(N, P, size=(20_000, P.size)) / N
    simulated = np.mean([step_likeness(P, r) for r in draws[:4000]])
    print(f"noise floor of S at N = {N} on the 21-point grid: {floor:.4f}")
    assert floor == pytest.approx(simulated, abs=0.002)
    assert floor == pytest.approx(math.sqrt(math.pi / (2 * N)), abs=0.005)  # ≈ 0.123
    assert noise_floor(P, np.full(P.size, 4 * N)) == pytest.approx(floor / 2, rel=0.03)
    assert noise_floor(P, None) == 0.0  # exact probabilities: no noise
    assert math.isnan(noise_floor([0.5], [N]))


# --- the benchmark ---------------------------------------------------------------------------


def _exact(x: float, probs: list[float]) -> Cell:
    return Cell(x, np.array(probs) / np.sum(probs), None)


def intermediate_model() -> BenchmarkParts:
    """A model between argmax and calibrated in every part, as exact distributions."""
    r = logistic(8.7563)
    return BenchmarkParts(
        exp1=[_exact(p, [1 - r(p), r(p)]) for p in GRID],
        exp2=[
            _exact(p, [(1 - r(p)) ** 2, (1 - r(p)) * r(p), r(p) * (1 - r(p)), r(p) ** 2])
            for p in GRID
        ],
        exp3=[_exact(q, [0.55 - q / 2, 0.3, 0.15 + q / 2]) for q in QGRID],
        exp4={
            g: [_exact(x, [r(x), 1 - r(x)]) for x in xs]
            for g, xs in zip(GAMES, (BIO, MP, BUS), strict=True)
        },
        exp5=[
            WordCell(
                pair, order, np.array([0.65, 0.35] if order == "forward" else [0.55, 0.45]), None
            )
            for pair in PAIRS
            for order in ("forward", "reverse")
        ],
    )


def sampled(parts: BenchmarkParts, rng: np.random.Generator) -> BenchmarkParts:
    def draw(c: Cell) -> Cell:
        return Cell(c.x, rng.multinomial(N, c.probs) / N, N)

    return BenchmarkParts(
        exp1=[draw(c) for c in parts.exp1],
        exp2=[draw(c) for c in parts.exp2],
        exp3=[draw(c) for c in parts.exp3],
        exp4={g: [draw(c) for c in cells] for g, cells in parts.exp4.items()},
        exp5=[WordCell(w.pair, w.order, rng.multinomial(N, w.probs) / N, N) for w in parts.exp5],
    )


@pytest.mark.parametrize("model", ["calibrated", "intermediate"])
def test_the_interval_of_the_benchmark_total_covers(model: str) -> None:
    truth_parts = perfect() if model == "calibrated" else intermediate_model()
    truth = score_benchmark(truth_parts).total
    rng = np.random.default_rng(7)
    hits = percentile_hits = 0
    sims = 120
    for i in range(sims):
        found = bootstrap_benchmark(sampled(truth_parts, rng), n_boot=200, seed=i)
        hits += _covered(*found.intervals["total"], truth)
        percentile_hits += _covered(*found.percentile["total"], truth)
    coverage, percentile = hits / sims, percentile_hits / sims
    message = (
        f"benchmark total {truth:.2f} ({model} model), N = {N}, {sims} runs: coverage"
        f" {coverage:.3f}; percentile interval {percentile:.3f}"
    )
    print(message)
    assert coverage >= REQUIRED, message


def test_the_noise_floor_of_the_benchmark_at_n_100() -> None:
    """A perfectly calibrated model scores 99.995 exact but about 91.4 sampled at N = 100."""
    rng = np.random.default_rng(5)
    floors = noise_floor_benchmark(sampled(perfect(), rng))
    print(f"noise floor of the benchmark at N = {N}: {floors}")
    assert floors["total"] == pytest.approx(91.4, abs=0.3)
    assert floors["total"] == pytest.approx(sum(floors[p] for p in floors if p != "total"))
    assert noise_floor_benchmark(perfect())["total"] == pytest.approx(99.9953, abs=1e-4)


def test_the_trend_direction_is_not_scrambled_by_noise() -> None:
    """Matching pennies steps x by 0.005 around 0.5: strict signs there are coin flips."""
    rng = np.random.default_rng(11)
    x = np.array(MP)
    d, d_trend = [], []
    for _ in range(400):
        cells = [
            Cell(v, np.array([k / N, 1 - k / N]), N)
            for v, k in zip(x, rng.binomial(N, x), strict=True)
        ]
        game = score_benchmark(BenchmarkParts(exp4={"matching_pennies": cells})).parts["exp4"]
        metrics = game.metrics["matching_pennies"]
        assert isinstance(metrics, dict)
        d.append(metrics["d"])
        d_trend.append(metrics["d_trend"])
    print(
        f"calibrated matching pennies, N = {N}: d {np.mean(d):.3f}, d_trend {np.mean(d_trend):.3f}"
    )
    assert np.mean(d) == pytest.approx(0.815, abs=0.02)  # exact: 1.0
    assert np.mean(d_trend) == 1.0


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("model", ["calibrated", "intermediate"])
def test_the_intervals_of_the_benchmark_sub_metrics_cover(model: str) -> None:
    """`show`'s sub-metric intervals (`bootstrap_metrics`: the Exp3 areas, a game's S, score,
    d and slope, the word biases) against the true sub-metrics, N = 100 per condition. The
    hard cases: d = 1 on closely spaced conditions (noise scrambles the signs of small true
    steps), the least-squares slope, and avg_red_bias = 0 with every pair at the dead band's
    edge (the intermediate model); docs/benchmark.md has the table."""
    truth_parts = perfect() if model == "calibrated" else intermediate_model()
    scored = score_benchmark(truth_parts).parts
    truth = {f"{p}.{k}": float(v) for p in scored for k, v in _leaves(scored[p].metrics).items()}
    rng = np.random.default_rng(7)
    sims = 200
    hits = dict.fromkeys(truth, 0)
    for i in range(sims):
        found = bootstrap_metrics(sampled(truth_parts, rng), n_boot=200, seed=i)
        flat = {f"{p}.{k}": v for p in found for k, v in _leaves(found[p]).items()}
        for key, value in truth.items():
            hits[key] += _covered(*flat[key], value)
    coverage = {k: h / sims for k, h in hits.items()}
    # A pair's rates and their mean are plain binomial percentile intervals (linear in the
    # rates, unbiased): 30 of them, each measured ± 0.015 here, so they are judged together.
    rates = [c for k, c in coverage.items() if ".pairs." in k and not k.endswith("red_bias")]
    red = [c for k, c in coverage.items() if ".pairs." in k and k.endswith("red_bias")]
    lines = [
        f"{k} (true {truth[k]:.4f}): {c:.3f}" for k, c in coverage.items() if ".pairs." not in k
    ]
    lines.append(f"per pair: red_bias lowest {min(red):.3f}; rates and their mean"
                 f" {np.mean(rates):.3f} together, lowest {min(rates):.3f}")  # fmt: skip
    print(f"benchmark sub-metrics ({model} model), N = {N}, {sims} runs:\n  " + "\n  ".join(lines))
    for key, c in coverage.items():
        if ".pairs." not in key or key.endswith("red_bias"):
            assert c >= REQUIRED, (key, c)
    assert np.mean(rates) >= REQUIRED


def _game(rates: list[float]) -> list[Cell]:
    return [Cell(x, np.array([r, 1 - r]), N) for x, r in zip(BUS, rates, strict=True)]


def test_an_interval_reaches_its_bound_only_where_the_data_allow_it() -> None:
    """The test inversions behind d's and avg_red_bias's ends: d's interval reaches 1 for a
    curve that may rise at every step, not for one with a significant fall; avg_red_bias's
    reaches 0 when every pair may lie in the dead band, not when pairs lie well outside."""
    rising = [0.12, 0.06, 0.46, 0.4, 0.62, 0.55, 1.0]  # each fall is within noise
    falling = [0.0, 0.1, 0.8, 0.3, 0.6, 0.9, 1.0]  # 0.8 → 0.3 at N = 100 is not
    pairs = [0.55, 0.53, 0.75, 0.6]  # red share in both orders; 0.75 is 2.6 se off the band

    def parts(game: list[float], red: float) -> BenchmarkParts:
        share = {"forward": red, "reverse": 1 - red}  # the red word is listed first, then second
        exp5 = [
            WordCell(p, o, np.array([share[o], 1 - share[o]]), N)
            for p in PAIRS
            for o in ("forward", "reverse")
        ]
        return BenchmarkParts(exp4={"business": _game(game)}, exp5=exp5)

    found = {
        (g, red): bootstrap_metrics(parts(rates, red), n_boot=200, seed=0)
        for g, rates in (("rising", rising), ("falling", falling))
        for red in pairs
    }
    for red in pairs:
        assert found["rising", red]["exp4"]["business"]["d"][1] == 1.0
        assert found["rising", red]["exp4"]["business"]["score"][1] == 4.0
        assert found["falling", red]["exp4"]["business"]["d"][1] < 1.0
        assert found["falling", red]["exp4"]["business"]["d"][0] > 0.0  # it rises elsewhere
    low = {red: found["rising", red]["exp5"]["avg_red_bias"][0] for red in pairs}
    sem = {red: found["rising", red]["exp5"]["Score_sem"][1] for red in pairs}
    assert low[0.55] == low[0.53] == low[0.6] == 0.0 and sem[0.55] == 10.0
    assert low[0.75] > 0.0 and sem[0.75] < 10.0
    # Exact cells have no noise: the slope's interval (a closed form) is the point itself.
    exact = [Cell(x, np.array([x, 1 - x]), None) for x in BUS]
    slope = bootstrap_metrics(BenchmarkParts(exp4={"business": exact}), n_boot=50)["exp4"]
    assert slope["business"]["slope"] == (1.0, 1.0)


@pytest.mark.parametrize("name", ["logistic S=0.66", "step crossing the diagonal"])
def test_the_interval_of_s_of_two_flips_per_reply_covers(name: str) -> None:
    """D = 2 flips per reply (independent here), resampled as whole replies: S of Mean(r)."""
    rates, _ = CURVES[name]
    truth = step_likeness(P, rates)
    rng = np.random.default_rng(2)
    sims, hits = 100, 0
    for i in range(sims):
        replies = {
            float(p): (rng.random((N, 2)) < r).astype(int) for p, r in zip(P, rates, strict=True)
        }
        s = position_curves(replies, n_boot=200, seed=i).s_mean
        hits += _covered(s.low, s.high, truth)
    message = f"S of Mean(r) = {truth:.3f} ({name}), D = 2, N = {N}: coverage {hits / sims:.3f}"
    print(message)
    assert hits / sims >= REQUIRED, message


# --- the categorical kind: TV and KL of one answer distribution against its request ----------

# (requested, true) shares: the ternary deck's (0.3, 0.3, 0.4) met exactly, mildly and far off
# (one answer on its target while the others are not), a q = 0 deck (an answer requested never)
# two standard errors off at N = 100, and a fair die met exactly.
CATEGORICAL = {
    "ternary, calibrated": ((0.3, 0.3, 0.4), (0.3, 0.3, 0.4)),
    "ternary, mildly off": ((0.3, 0.3, 0.4), (0.33, 0.3, 0.37)),
    "ternary, far off": ((0.3, 0.3, 0.4), (0.5, 0.3, 0.2)),
    "q = 0 deck, off by 0.1": ((0.6, 0.4, 0.0), (0.5, 0.5, 0.0)),
    "die, calibrated": ((1 / 6,) * 6, (1 / 6,) * 6),
}


@pytest.mark.parametrize("n", [100, 300])
@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_the_intervals_of_tv_and_kl_cover(name: str, n: int) -> None:
    """`categorical_fit`'s TV and KL intervals, exactly as `show` computes them (fewer
    replicates), against the truth; the percentile interval of the same first replicates is
    measured beside them (it never covers a calibrated model)."""
    requested, true = (np.array(v) for v in CATEGORICAL[name])
    with np.errstate(divide="ignore", invalid="ignore"):
        truth_kl = float(np.sum(np.where(true > 0, true * np.log(true / requested), 0.0)))
    truth_tv = 0.5 * float(np.abs(true - requested).sum())
    sims, n_boot = 400, 500
    counts = np.random.default_rng(1).multinomial(n, true, size=sims)
    hits = {"TV": 0, "KL": 0}
    percentile = {"TV": 0, "KL": 0}
    for i, k in enumerate(counts):
        fit = categorical_fit(k, requested, n_boot=n_boot, seed=i)
        hits["TV"] += _covered(fit.tv.low, fit.tv.high, truth_tv)
        hits["KL"] += _covered(fit.kl.low, fit.kl.high, truth_kl)
        star = redraw_shares(generator(i), n, k / n, n_boot)  # the fit's first replicates
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_star = np.sum(np.where(star > 0, star * np.log(star / requested), 0.0), axis=1)
        percentile["TV"] += _covered(
            *percentile_interval(0.5 * np.abs(star - requested).sum(axis=1), NOMINAL), truth_tv
        )
        percentile["KL"] += _covered(*percentile_interval(kl_star, NOMINAL), truth_kl)
    message = (
        f"{name} (TV = {truth_tv:.3f}, KL = {truth_kl:.4f}), N = {n}, {sims} runs: coverage"
        f" TV {hits['TV'] / sims:.3f}, KL {hits['KL'] / sims:.3f}; percentile interval"
        f" TV {percentile['TV'] / sims:.3f}, KL {percentile['KL'] / sims:.3f}"
    )
    print(message)
    assert min(hits.values()) / sims >= REQUIRED, message
