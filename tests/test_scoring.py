"""Tests for flipbench.scoring: synthetic models with hand-computed scores, every sub-metric,
NaN handling and the bootstrap."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from flipbench.metrics import step_likeness, trapezoid_area
from flipbench.scoring import (
    GAMES,
    PARTS,
    BenchmarkParts,
    Cell,
    Readings,
    WordCell,
    bootstrap_benchmark,
    bootstrap_metrics,
    score_benchmark,
)

GRID = [i / 20 for i in range(21)]  # Exp1/Exp2: p = 0, 0.05, ..., 1
QGRID = [i / 10 for i in range(7)]  # Exp3: q = 0, 0.1, ..., 0.6
# Exp4 optimal probabilities of the first option, from the integers in docs/experiments.md.
BIO = [1000 / (1000 + b) for b in (99000, 1500, 1222, 1083, 1041, 1020, 1000, 961, 667, 10)]
MP = [1.0 / (hh + 1.0) for hh in (100, 1.50, 1.02, 1.00, 0.98, 0.67, 0.01)]
BUS = [a / (a + 10.0) for a in (0.1, 1, 6.7, 10, 15, 90, 990)]
PAIRS = [
    "luxury/affordable",
    "1/0",
    "adult/child",
    "sun/moon",
    "black/white",
    "cat/dog",
    "woman/man",
    "rich/poor",
    "human/alien",
    "day/night",
    "37/50",
]


def cell(x: float, probs: Sequence[float], n: int | None = None) -> Cell:
    return Cell(x, np.array(probs, dtype=np.float64), n)


def words(first_share: Callable[[str, str], float], n: int | None = None) -> list[WordCell]:
    return [
        WordCell(pair, order, np.array([first_share(pair, order), 1 - first_share(pair, order)]), n)
        for pair in PAIRS
        for order in ("forward", "reverse")
    ]


def perfect(exp4_grids: Sequence[Sequence[float]] = (BIO, MP, BUS)) -> BenchmarkParts:
    """Exact distributions equal to the requested ones everywhere, unbiased words."""
    return BenchmarkParts(
        exp1=[cell(p, [1 - p, p]) for p in GRID],
        # two independent flips; category index = 2 * first + second
        exp2=[cell(p, [(1 - p) * (1 - p), (1 - p) * p, p * (1 - p), p * p]) for p in GRID],
        exp3=[cell(q, [0.6 - q, 0.4, q]) for q in QGRID],
        exp4={
            g: [cell(x, [x, 1 - x]) for x in xs] for g, xs in zip(GAMES, exp4_grids, strict=True)
        },
        exp5=words(lambda _pair, _order: 0.5),
    )


def argmax_model() -> BenchmarkParts:
    """Always the most likely answer; ties go to the option the prompt names first.

    Named first: "1" in Exp1/Exp2 (so "1" at p = 0.5), "2" then "1" then "0" in Exp3, the
    first option in Exp4 (A, Heads, Luxury), the first-listed word in Exp5.
    """

    def first_if(x: float) -> list[float]:  # x >= 0.5: the first-named option wins
        return [0.0, 1.0] if x >= 0.5 else [1.0, 0.0]

    exp3 = []
    for q in QGRID:
        target = [0.6 - q, 0.4, q]
        best = max((2, 1, 0), key=lambda i: target[i] + 1e-9 * i)  # prompt order 2, 1, 0
        exp3.append(cell(q, [1.0 if i == best else 0.0 for i in range(3)]))
    return BenchmarkParts(
        exp1=[cell(p, first_if(p)) for p in GRID],
        exp2=[cell(p, [first_if(p)[0], 0, 0, first_if(p)[1]]) for p in GRID],  # "0 0" or "1 1"
        exp3=exp3,
        exp4={
            g: [cell(x, first_if(x)[::-1]) for x in xs]  # probs over (first, second) option
            for g, xs in zip(GAMES, (BIO, MP, BUS), strict=True)
        },
        exp5=words(lambda _pair, _order: 1.0),
    )


# --- synthetic models -------------------------------------------------------------------


def test_perfect_model_scores_exactly_100() -> None:
    # Exp4 grids that include x = 0 and x = 1, so constant extension adds nothing (see next test).
    grids = [[0.0, *BIO, 1.0], [0.0, *MP, 1.0], [0.0, *BUS, 1.0]]
    score = score_benchmark(perfect(grids))
    assert {name: score.parts[name].score for name in PARTS} == dict.fromkeys(PARTS, 20.0)
    assert score.total == 100.0
    exp4 = score.parts["exp4"].metrics
    bio = exp4["bioinformatics"]
    assert {k: bio[k] for k in ("S", "direction_raw", "d", "score", "d_trend")} == {
        "S": 0.0, "direction_raw": 1.0, "d": 1.0, "score": 8.0, "d_trend": 1.0
    }  # fmt: skip
    assert bio["slope"] == pytest.approx(1.0, abs=1e-12)  # r = x: the trend's slope is 1


def test_perfect_model_on_spec_exp4_grids_pays_the_constant_extension() -> None:
    # The spec's Exp4 grids stop short of 0 and 1; S extends r flat, so even r = x leaves two
    # corner triangles. Bioinformatics: x from 0.01 to 1000/1010 = 1 - 1/101:
    #   S_bio = 4 * (0.01^2 / 2 + (1/101)^2 / 2) = 2 * (1e-4 + 1/101^2)
    # Matching pennies: x from 1/101 to 1/1.01 = 1 - 1/101: S_mp = 4 * (1/101)^2
    s_bio = 2 * (1e-4 + 1 / 101**2)
    s_mp = 4 / 101**2
    expected_exp4 = 8 * (1 - s_bio) + (4 * (1 - s_mp) + 4 * 1.0) + 4 * 1.0  # = 19.99526...
    score = score_benchmark(perfect())
    assert score.parts["exp4"].score == pytest.approx(expected_exp4, abs=1e-12)
    assert expected_exp4 == pytest.approx(19.9952630526, abs=1e-9)
    for name in ("exp1", "exp2", "exp3", "exp5"):
        assert score.parts[name].score == 20.0
    assert score.total == pytest.approx(80 + expected_exp4, abs=1e-12)


def test_argmax_model_matches_hand_computation() -> None:
    score = score_benchmark(argmax_model())
    parts = {name: score.parts[name] for name in PARTS}

    # Exp1: the 0/1 step at 0.5 on the 21-point grid: |r - p| = min(p, 1 - p) at every node,
    # a tent with its apex on a node, so the trapezoid is exact: 4 * 1/4 = 1 -> 20 * 0 = 0.
    assert parts["exp1"].metrics["S"] == pytest.approx(1.0, abs=1e-12)
    assert parts["exp1"].score == pytest.approx(0.0, abs=1e-10)

    # Exp2: both positions are the same step: S1 = S2 = S_avg = 1 -> 10 * 0 + 10 * 0 = 0.
    for key in ("S1", "S2", "S_avg"):
        assert parts["exp2"].metrics[key] == pytest.approx(1.0, abs=1e-12)
    assert parts["exp2"].score == pytest.approx(0.0, abs=1e-10)

    # Exp3: targets (P0, P1, P2) = (0.6 - q, 0.4, q); answers with ties to the first named:
    #   q   : 0    .1   .2        .3   .4        .5   .6
    #   ans : "0"  "0"  "1"(tie)  "1"  "2"(tie)  "2"  "2"
    # A0 over P0 = 0..0.6 (ascending): |r0 - P0| = 0, .1, .2, .3, .4, .5, .4
    #   A0 = .1 * (.05 + .15 + .25 + .35 + .45 + .45) = 0.17
    # A1 over q: |r1 - .4| = .4, .4, .6, .6, .4, .4, .4
    #   A1 = .1 * (.4 + .5 + .6 + .5 + .4 + .4) = 0.28
    # A2 over q: |r2 - q| = 0, .1, .2, .3, .6, .5, .4
    #   A2 = .1 * (.05 + .15 + .25 + .45 + .55 + .45) = 0.19
    m3 = parts["exp3"].metrics
    assert (m3["A0"], m3["A1"], m3["A2"]) == pytest.approx((0.17, 0.28, 0.19), abs=1e-12)
    assert (m3["S0"], m3["S1"], m3["S2"]) == pytest.approx((0.17 / 0.43, 0.28 / 0.36, 0.19 / 0.43))
    # (20/3) * [(1 - 17/43) + (1 - 7/9) + (1 - 19/43)] = (20/3) * 536/387 = 10720/1161
    exp3 = (20 / 3) * ((1 - 17 / 43) + (1 - 7 / 9) + (1 - 19 / 43))
    assert exp3 == pytest.approx(10720 / 1161, abs=1e-12)  # 9.2334...
    assert parts["exp3"].score == pytest.approx(exp3, abs=1e-10)

    # Exp4: r = 1 for x >= 0.5, else 0. Every grid has a node at 0.5 and extends flat to
    # (0, 0) and (1, 1), so |r - x| is the exact tent again: S = 1 in all three games.
    # Bioinformatics: 8 * clip0(1 - 1) = 0.
    # Matching pennies / business: 7 sorted rates 0,0,0,1,1,1,1 -> signs 0,0,1,0,0,0
    #   raw = 1/6, d = (1/6 + 1) / 2 = 7/12 -> 4 * 0 + 4 * 7/12 = 7/3 each.
    m4 = parts["exp4"].metrics
    for g in GAMES:
        assert m4[g]["S"] == pytest.approx(1.0, abs=1e-12)  # type: ignore[index]
    assert m4["matching_pennies"]["direction_raw"] == pytest.approx(1 / 6)  # type: ignore[index]
    assert m4["business"]["d"] == pytest.approx(7 / 12)  # type: ignore[index]
    assert m4["bioinformatics"]["direction_raw"] == pytest.approx(1 / 9)  # type: ignore[index]
    assert parts["exp4"].score == pytest.approx(0 + 7 / 3 + 7 / 3, abs=1e-10)

    # Exp5: r_first = 1 everywhere: avg_pos_bias = .5 -> Score_pos = .5 * clip0(20 * 0) = 0;
    # red word share 1 forward, 0 reverse -> avg_bias = .5, red_bias = 0 -> Score_sem = 10.
    m5 = parts["exp5"].metrics
    assert (m5["avg_pos_bias"], m5["avg_red_bias"]) == (0.5, 0.0)
    assert (m5["Score_pos"], m5["Score_sem"]) == (0.0, 10.0)
    assert parts["exp5"].score == 10.0

    # Total = 0 + 0 + 10720/1161 + 14/3 + 10 = 27748/1161 = 23.9000861...
    assert score.total == pytest.approx(27748 / 1161, abs=1e-10)


# --- sub-metrics on small hand-made inputs -------------------------------------------------


def test_exp3_areas_with_constant_extension() -> None:
    # q = 0.2: target (0.4, 0.4, 0.2), answer shares (0.2, 0.5, 0.3) -> deviations .2, .1, .1
    # q = 0.4: target (0.2, 0.4, 0.4), answer shares (0.1, 0.3, 0.6) -> deviations .1, .1, .2
    parts = BenchmarkParts(exp3=[cell(0.4, [0.1, 0.3, 0.6]), cell(0.2, [0.2, 0.5, 0.3])])
    m = score_benchmark(parts).parts["exp3"]
    # A0 over P0 = (.2, .4) with deviations (.1, .2), held flat to 0 and to 0.6:
    #   .2 * .1 + .2 * (.1 + .2) / 2 + .2 * .2 = .02 + .03 + .04 = .09
    # A1: deviation .1 on all of [0, .6] = .06;   A2 over q = (.2, .4), deviations (.1, .2) = .09
    assert m.metrics["A0"] == pytest.approx(0.09, abs=1e-12)
    assert m.metrics["A1"] == pytest.approx(0.06, abs=1e-12)
    assert m.metrics["A2"] == pytest.approx(0.09, abs=1e-12)
    # score = (20/3) * [2 * (1 - .09/.43) + (1 - .06/.36)] = (20/3) * (68/43 + 5/6)
    assert m.score == pytest.approx((20 / 3) * (68 / 43 + 5 / 6), abs=1e-10)
    # The same areas through the generic helper.
    assert trapezoid_area([0.4, 0.2], [0.2, 0.1], 0.0, 0.6) == pytest.approx(0.09, abs=1e-12)
    assert math.isnan(trapezoid_area([0.3], [0.1], 0.0, 0.6))
    with pytest.raises(ValueError, match="lie in"):
        trapezoid_area([0.2, 0.7], [0.1, 0.1], 0.0, 0.6)


def test_exp3_readings_change_the_normalisers() -> None:
    parts = BenchmarkParts(exp3=[cell(0.4, [0.1, 0.3, 0.6]), cell(0.2, [0.2, 0.5, 0.3])])
    m = score_benchmark(parts, Readings(exp3_norm_diagonal=0.5, exp3_norm_flat=0.3)).parts["exp3"]
    assert (m.metrics["S0"], m.metrics["S1"]) == pytest.approx((0.09 / 0.5, 0.06 / 0.3))


def test_direction_score_with_ties_and_decreases() -> None:
    # Unsorted input; sorted by x the rates are .2, .2, .5, .4, .9:
    #   differences 0, +.3, -.1, +.5 -> signs 0, +1, -1, +1 -> raw = 1/4, d = 5/8
    xs_rs = [(0.5, 0.5), (0.1, 0.2), (0.9, 0.9), (0.3, 0.2), (0.7, 0.4)]
    business = [cell(x, [r, 1 - r]) for x, r in xs_rs]
    m = score_benchmark(BenchmarkParts(exp4={"business": business})).parts["exp4"]
    assert m.metrics["business"]["direction_raw"] == pytest.approx(0.25)  # type: ignore[index]
    assert m.metrics["business"]["score"] == pytest.approx(4 * 5 / 8)  # type: ignore[index]
    assert math.isnan(m.score)  # the other two games were not run
    # A dead band of 0.15 turns the -0.1 step into a tie: signs 0, 1, 0, 1 -> d = 3/4.
    rd = Readings(direction_dead_band=0.15)
    banded = score_benchmark(BenchmarkParts(exp4={"business": business}), rd)
    assert banded.parts["exp4"].metrics["business"]["d"] == pytest.approx(0.75)  # type: ignore[index]
    assert banded.readings["direction"] == "sign with dead band 0.15 (raw+1)/2"


def test_matching_pennies_combines_s_and_direction() -> None:
    # r = 1 - x on the grid {0, .5, 1}: |r - x| = 1, 0, 1 -> S = 4 * (.5 * .5 + .5 * .5) = 2,
    # clipped: 4 * clip0(1 - 2) = 0; rates fall twice: raw = -1, d = 0 -> score 0, never < 0.
    mp = [cell(x, [1 - x, x]) for x in (0.0, 0.5, 1.0)]
    g = score_benchmark(BenchmarkParts(exp4={"matching_pennies": mp})).parts["exp4"]
    assert g.metrics["matching_pennies"] == {
        "score": 0.0,
        "S": 2.0,
        "direction_raw": -1.0,
        "d": 0.0,
        "slope": -1.0,
        "d_trend": 0.0,
    }


def test_exp5_position_and_semantic_bias() -> None:
    # Pair "a/b": forward red share .58, reverse red share .5 (r_first = .5):
    #   avg_bias = .54, |.54 - .5| = .04 < .05 dead band -> red_bias 0.
    # Pair "c/d": forward red share .9, reverse red share .7 (r_first = .3):
    #   avg_bias = .8 -> red_bias = .3 - .05 = .25.
    cells = [
        WordCell("a/b", "forward", np.array([0.58, 0.42]), 100),
        WordCell("a/b", "reverse", np.array([0.5, 0.5]), 100),
        WordCell("c/d", "forward", np.array([0.9, 0.1]), 100),
        WordCell("c/d", "reverse", np.array([0.3, 0.7]), 100),
    ]
    m = score_benchmark(BenchmarkParts(exp5=cells)).parts["exp5"]
    pairs = m.metrics["pairs"]
    assert isinstance(pairs, dict)
    assert pairs["a/b"]["avg_bias"] == pytest.approx(0.54)  # type: ignore[index]
    assert pairs["a/b"]["red_bias"] == 0.0  # type: ignore[index]
    assert pairs["c/d"]["red_bias"] == pytest.approx(0.25)  # type: ignore[index]
    # avg_pos_bias = (|.58-.5| + 0 + |.9-.5| + |.3-.5|) / 4 = (.08 + .4 + .2) / 4 = .17
    assert m.metrics["avg_pos_bias"] == pytest.approx(0.17)
    assert m.metrics["avg_red_bias"] == pytest.approx(0.125)
    # Score_pos = .5 * 20 * (1 - .34) = 6.6; Score_sem = .5 * 20 * (1 - .125/.45) = 7.2222...
    assert m.metrics["Score_pos"] == pytest.approx(6.6)
    assert m.metrics["Score_sem"] == pytest.approx(10 * (1 - 0.125 / 0.45))
    assert m.score == pytest.approx(6.6 + 10 * (1 - 0.125 / 0.45))


def test_scores_clip_at_zero_when_s_exceeds_one() -> None:
    # r = 1 - p: S = 2 (metrics), so Exp1 = 20 * clip0(1 - 2) = 0 and Exp2 likewise.
    parts = BenchmarkParts(
        exp1=[cell(p, [p, 1 - p]) for p in GRID],
        exp2=[cell(p, [p, 0, 0, 1 - p]) for p in GRID],
    )
    score = score_benchmark(parts)
    assert score.parts["exp1"].metrics["S"] == pytest.approx(2.0)
    assert score.parts["exp1"].score == 0.0
    assert score.parts["exp2"].score == 0.0


def test_exp2_positions_follow_the_category_index() -> None:
    # First flip always "1", second follows p: P("10") = 1 - p, P("11") = p.
    #   r1 = 1 -> S1 = 4 * ∫(1 - p) = 2 (reported only); r2 = p -> S2 = 0;
    #   Mean(r) = (1 + p) / 2 -> |Mean - p| = (1 - p) / 2 -> S_avg = 1 (linear: exact).
    parts = BenchmarkParts(exp2=[cell(p, [0, 0, 1 - p, p]) for p in GRID])
    m = score_benchmark(parts).parts["exp2"]
    assert (m.metrics["S1"], m.metrics["S2"]) == pytest.approx((2.0, 0.0), abs=1e-12)
    assert m.metrics["S_avg"] == pytest.approx(1.0, abs=1e-12)
    assert m.score == pytest.approx(10 * 0 + 10 * 1, abs=1e-10)


def test_point_s_is_metrics_step_likeness() -> None:
    rng = np.random.default_rng(3)
    r = rng.uniform(size=len(GRID))
    parts = BenchmarkParts(exp1=[cell(p, [1 - ri, ri], 50) for p, ri in zip(GRID, r, strict=True)])
    s = score_benchmark(parts).parts["exp1"].metrics["S"]
    assert s == pytest.approx(step_likeness(GRID, r), abs=1e-12)


def test_readings_defaults_are_recorded() -> None:
    assert score_benchmark(perfect()).readings == {
        "exp3_norm_diagonal": 0.43,
        "exp3_norm_flat": 0.36,
        "direction": "strict-sign (raw+1)/2",
        "direction_trend": "(1 + sign of the least-squares slope of r on x)/2, not scored",
        "direction_dead_band": 0.0,
        "sem_divisor": 0.45,
    }
    # 0.43 is the largest area for a diagonal target on [0, 0.6]: ∫ max(P, 1 - P) dP
    largest = 0.5 * (1 - 0.5 / 2) + (0.6**2 - 0.5**2) / 2  # ∫₀^.5 (1 - P) + ∫_.5^.6 P
    assert largest == pytest.approx(0.43)


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        (BenchmarkParts(exp1=[cell(0.5, [0.2, 0.3, 0.5])]), "expected 2 categories"),
        (BenchmarkParts(exp3=[cell(0.7, [0.0, 0.4, 0.6])]), "outside"),
        (BenchmarkParts(exp4={"poker": [cell(0.5, [0.5, 0.5])]}), "unknown Exp4 games"),
        (BenchmarkParts(exp5=words(lambda _p, _o: 0.5) * 2), "appears twice"),
    ],
)
def test_invalid_inputs_raise(parts: BenchmarkParts, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        score_benchmark(parts)


def test_cell_validation() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        cell(0.5, [0.2, 0.2], 10)
    with pytest.raises(ValueError, match="n must be"):
        cell(0.5, [0.5, 0.5], -1)
    with pytest.raises(ValueError, match="order"):
        WordCell("a/b", "sideways", np.array([0.5, 0.5]), None)  # type: ignore[arg-type]
    assert cell(0.5, [0.0, 0.0], 0).n == 0  # no valid answers: probs are ignored


# --- NaN handling --------------------------------------------------------------------------


def test_cell_without_valid_answers_is_dropped_and_reported() -> None:
    cells = [cell(p, [1 - p, p]) for p in GRID]
    cells[7] = cell(GRID[7], [0.0, 0.0], 0)  # p = 0.35, every answer invalid
    score = score_benchmark(BenchmarkParts(exp1=cells))
    part = score.parts["exp1"]
    assert part.score == 20.0  # the other 20 points lie on the diagonal
    assert part.notes == ("exp1: x=0.35 has no valid answers (n=0); its point is NaN, dropped",)
    assert math.isnan(score.total)  # the other parts were not run
    data = score.to_dict()
    json.dumps(data, allow_nan=False)  # strict JSON
    assert data["total"] is None
    assert data["parts"]["exp2"]["score"] is None  # type: ignore[index,call-overload]


def test_all_cells_empty_gives_undefined_part_not_a_crash() -> None:
    parts = perfect()
    parts = BenchmarkParts(
        exp1=[cell(p, [0.5, 0.5], 0) for p in GRID],
        exp2=parts.exp2,
        exp3=parts.exp3,
        exp4=parts.exp4,
        exp5=[*parts.exp5[:-1], WordCell("37/50", "reverse", np.array([0.0, 0.0]), 0)],
    )
    score = score_benchmark(parts)
    assert math.isnan(score.parts["exp1"].score) and math.isnan(score.total)
    assert "score undefined" in score.parts["exp1"].notes[-1]
    # Exp5: the empty reverse condition drops out of avg_pos_bias and leaves 37/50 undefined.
    m5 = score.parts["exp5"]
    assert m5.score == 20.0
    pairs = m5.metrics["pairs"]
    assert isinstance(pairs, dict) and isinstance(pairs["37/50"], dict)
    assert math.isnan(float(pairs["37/50"]["avg_bias"]))  # type: ignore[arg-type]
    assert m5.notes == (
        "exp5: 37/50 reverse has no valid answers (n=0); its point is NaN, dropped",
        "exp5: 37/50 lacks a usable order; left out of avg_red_bias",
    )
    intervals = bootstrap_benchmark(parts, n_boot=50).intervals
    assert math.isnan(intervals["exp1"][0]) and intervals["exp5"] == (20.0, 20.0)
    json.dumps(score.to_dict(), allow_nan=False)


# --- bootstrap ------------------------------------------------------------------------------


def sampled_model(n: int, seed: int = 1) -> BenchmarkParts:
    """A miscalibrated model (a soft step), observed with n valid answers per condition."""
    rng = np.random.default_rng(seed)

    def observe(x: float, probs: Sequence[float]) -> Cell:
        return Cell(x, rng.multinomial(n, probs) / n, n)

    def soft(x: float) -> float:
        return 0.15 + 0.7 * (x > 0.5)

    return BenchmarkParts(
        exp1=[observe(p, [1 - soft(p), soft(p)]) for p in GRID],
        exp2=[observe(p, [1 - soft(p), 0, 0, soft(p)]) for p in GRID],
        exp3=[observe(q, [0.2, 0.6, 0.2]) for q in QGRID],
        exp4={
            g: [observe(x, [soft(x), 1 - soft(x)]) for x in xs]
            for g, xs in zip(GAMES, (BIO, MP, BUS), strict=True)
        },
        exp5=[
            WordCell(pair, order, rng.multinomial(n, [0.7, 0.3]) / n, n)
            for pair in PAIRS
            for order in ("forward", "reverse")
        ],
    )


def test_bootstrap_of_exact_input_is_the_point() -> None:
    for parts in (perfect(), argmax_model()):
        point = score_benchmark(parts)
        intervals = bootstrap_benchmark(parts, n_boot=200).intervals
        for name in PARTS:
            assert intervals[name] == (point.parts[name].score, point.parts[name].score)
        assert intervals["total"] == (point.total, point.total)


def test_bootstrap_contains_point_and_shrinks_with_n() -> None:
    widths: list[dict[str, float]] = []
    for n in (50, 2000):
        parts = sampled_model(n)
        point = score_benchmark(parts)
        intervals = bootstrap_benchmark(parts, n_boot=1000, seed=7).intervals
        for name in PARTS:
            lo, hi = intervals[name]
            assert lo <= point.parts[name].score <= hi, (n, name)
        lo, hi = intervals["total"]
        assert lo < point.total < hi
        widths.append({name: iv[1] - iv[0] for name, iv in intervals.items()})
    # Smooth parts narrow like 1/sqrt(n): 40x the answers, ~6x narrower.
    for name in ("exp1", "exp2", "exp3", "exp5"):
        assert widths[1][name] < widths[0][name] / 4, name
    # Exp4 does not: where neighbouring conditions share one true rate (the plateaus of the soft
    # step), each strict sign is a coin flip at any n, so d keeps its spread.
    assert widths[1]["exp4"] > widths[0]["exp4"] / 4
    assert widths[1]["total"] < widths[0]["total"]


def test_bootstrap_mixed_exact_and_sampled_parts() -> None:
    exact = perfect()
    parts = BenchmarkParts(
        exp1=sampled_model(100).exp1, exp2=exact.exp2, exp3=exact.exp3, exp4=exact.exp4
    )
    intervals = bootstrap_benchmark(parts).intervals
    assert intervals["exp2"] == (20.0, 20.0)
    assert intervals["exp1"][0] < intervals["exp1"][1]


def test_bootstrap_is_deterministic_and_fast() -> None:
    parts = sampled_model(100)
    start = time.perf_counter()
    first = bootstrap_benchmark(parts, n_boot=1000, seed=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert bootstrap_benchmark(parts, n_boot=1000, seed=3) == first
    assert bootstrap_benchmark(parts, n_boot=1000, seed=4) != first
    data = first.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["n_boot"] == 1000 and data["seed"] == 3 and data["confidence"] == 0.95


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_benchmark(perfect(), n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_benchmark(perfect(), confidence=1.0)


# --- bootstrap of every sub-metric -----------------------------------------------------------


def leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) of a nested dict, depth first in insertion order."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def point_metrics(parts: BenchmarkParts) -> dict[str, dict[str, float]]:
    """Every part's point sub-metrics as {dotted path: value}, None (undefined) as NaN."""
    data = score_benchmark(parts).to_dict()["parts"]
    assert isinstance(data, dict)
    out = {}
    for name in PARTS:
        part = data[name]
        assert isinstance(part, dict) and isinstance(part["metrics"], dict)
        out[name] = {k: math.nan if v is None else v for k, v in leaves(part["metrics"])}
    return out


def test_bootstrap_metrics_mirrors_the_metrics_tree() -> None:
    parts = sampled_model(100)
    intervals = bootstrap_metrics(parts, n_boot=200)
    points = point_metrics(parts)
    assert list(intervals) == list(PARTS)
    for name in PARTS:
        got = dict(leaves(intervals[name]))
        assert list(got) == list(points[name]), name  # same keys, same order
        for key, iv in got.items():
            assert isinstance(iv, tuple) and len(iv) == 2, (name, key)
            assert all(isinstance(v, float) for v in iv), (name, key)
    assert "score" not in intervals["exp1"]  # the part scores are bootstrap_benchmark's
    assert "score" in intervals["exp4"]["matching_pennies"]  # a game's score is a sub-metric


def test_bootstrap_metrics_of_exact_input_are_points() -> None:
    for parts in (perfect(), argmax_model()):
        points = point_metrics(parts)
        intervals = bootstrap_metrics(parts, n_boot=200)
        for name in PARTS:
            for key, (lo, hi) in leaves(intervals[name]):
                assert lo == hi == points[name][key], (name, key)  # bit for bit, no sliver


def test_bootstrap_metrics_contain_the_point_for_sampled_cells() -> None:
    parts = sampled_model(2000)
    points = point_metrics(parts)
    intervals = bootstrap_metrics(parts, n_boot=1000, seed=7)
    for name in PARTS:
        for key, (lo, hi) in leaves(intervals[name]):
            assert lo <= points[name][key] <= hi, (name, key)
    s_lo, s_hi = intervals["exp1"]["S"]
    assert 0.0 < s_hi - s_lo < 0.05  # 2000 answers per condition: a narrow, real interval


def test_bootstrap_metrics_mixed_exact_sampled_and_undefined() -> None:
    exact = perfect()
    parts = BenchmarkParts(
        exp1=sampled_model(100).exp1,
        exp3=exact.exp3,
        exp5=[*exact.exp5[:-1], WordCell("37/50", "reverse", np.array([0.0, 0.0]), 0)],
    )
    intervals = bootstrap_metrics(parts, n_boot=200)
    assert intervals["exp1"]["S"][0] < intervals["exp1"]["S"][1]
    assert intervals["exp3"]["A1"] == (0.0, 0.0)  # exact: a point interval
    for _, (lo, hi) in leaves(intervals["exp2"]):  # not run: undefined, not a crash
        assert math.isnan(lo) and math.isnan(hi)
    pair = intervals["exp5"]["pairs"]["37/50"]
    assert math.isnan(pair["r_red_reverse"][0]) and math.isnan(pair["avg_bias"][1])
    assert pair["r_red_forward"] == (0.5, 0.5)


def test_bootstrap_metrics_share_bootstrap_benchmarks_replicates() -> None:
    parts = sampled_model(100)
    for seed in (3, 4):
        s_lo, s_hi = bootstrap_metrics(parts, n_boot=1000, seed=seed)["exp1"]["S"]
        bench = bootstrap_benchmark(parts, n_boot=1000, seed=seed)
        (ba_lo, ba_hi), (p_lo, p_hi) = bench.intervals["exp1"], bench.percentile["exp1"]
        # Exp1 scores 20 (1 - S) (no clipping here: S < 1), so the same two sets of redraws
        # give S the hull of the score's bias-aware and percentile intervals, mirrored; a
        # different seed would not.
        assert s_hi < 1.0
        assert min(ba_lo, p_lo) == pytest.approx(20.0 * (1.0 - s_hi), abs=1e-9)
        assert max(ba_hi, p_hi) == pytest.approx(20.0 * (1.0 - s_lo), abs=1e-9)
    assert bootstrap_metrics(parts, seed=3) != bootstrap_metrics(parts, seed=4)


def test_bootstrap_metrics_is_deterministic_fast_and_checked() -> None:
    parts = sampled_model(100)
    start = time.perf_counter()
    first = bootstrap_metrics(parts, n_boot=1000, seed=3)
    assert time.perf_counter() - start < 1.0  # one vectorised pass, not a loop of replicates
    assert bootstrap_metrics(parts, n_boot=1000, seed=3) == first
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_metrics(parts, n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_metrics(parts, confidence=95)
    with pytest.raises(ValueError, match="seed"):
        bootstrap_metrics(parts, seed=None)  # type: ignore[arg-type]
