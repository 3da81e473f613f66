"""Per-experiment analysis: each kind's metrics from hand-made answers, checked by hand."""

from __future__ import annotations

import math
import statistics

import pytest

from flipbench.analysis import ConditionData
from flipbench.kinds import analyse
from flipbench.tasks import get_experiment


def _data(name: str, answers: dict[str, list[str]], **kwargs: object) -> list[ConditionData]:
    experiment = get_experiment(name).resolve(**kwargs)  # type: ignore[arg-type]
    return [ConditionData(c, answers.get(c.key, [])) for c in experiment.conditions()]


def test_single_flip_step_has_s_one() -> None:
    exp = get_experiment("single-flip").resolve(grid="zoom")
    answers = {c.key: ["1" if c.x > 0.5 else "0"] * 10 for c in exp.conditions()}
    answers["p=50"] = ["1"] * 5 + ["0"] * 5
    result = analyse(exp, _data("single-flip", answers, grid="zoom"))
    # Nodes (p, r), extended flat to 0 and 1: (0, 0) (.45, 0) (.49, 0) (.5, .5) (.51, 1)
    # (.55, 1) (1, 1); |r − p| = 0, .45, .49, 0, .49, .45, 0; trapezoids .10125 + .0188
    # + .00245 + .00245 + .0188 + .10125 = .245 → S = 4 · .245 = 0.98
    assert result.s == pytest.approx(0.98)
    lo, hi = result.s_ci
    assert lo <= 0.98 <= hi


def test_game_direction_score_counts_adjacent_signs() -> None:
    exp = get_experiment("business").resolve()
    keys = [c.key for c in exp.conditions()]  # sorted by the optimal P(Luxury)
    shares = [0, 0, 2, 2, 5, 4, 10]  # of 10 answers: up, flat, up, flat, up, down
    answers = {
        k: ["Luxury"] * s + ["Affordable"] * (10 - s) for k, s in zip(keys, shares, strict=True)
    }
    result = analyse(exp, _data("business", answers))
    # signs: 0, +1, 0, +1, −1, +1 → raw = 2/6, d = (raw + 1) / 2 = 2/3
    assert result.metrics.to_json()["direction_raw"]["value"] == pytest.approx(2 / 6)
    d = result.metrics.to_json()["direction_d"]
    assert d["value"] == pytest.approx(2 / 3) and d["low"] <= 2 / 3 <= d["high"]
    assert any("direction score d = 0.667" in line for line in result.lines)


def test_two_flips_per_position_and_mean() -> None:
    exp = get_experiment("d-flips").resolve(p_values=["0", "100"], d=2)
    answers = {"p=0": ["1 0"] * 4, "p=100": ["1 1"] * 4}  # position 1 always "1"
    result = analyse(exp, _data("d-flips", answers, p_values=["0", "100"], d=2))
    s_pos = [e["value"] for e in result.metrics.to_json()["positions"]["s_position"]]
    # r1 = 1 at both ends: |r1 − p| is 1 at p = 0 and 0 at p = 1 → S1 = 4·(1 + 0)/2 = 2
    # r2 = p exactly → S2 = 0; Mean(r) = 0.5 and 1 → |.| = 0.5, 0 → S = 4·0.25 = 1
    assert s_pos == pytest.approx([2.0, 0.0])
    assert result.s == pytest.approx(1.0)


def test_ten_flips_report_the_count_histogram() -> None:
    exp = get_experiment("d-flips").resolve(grid="fig3", d=10)
    same = "1 0 0 0 0 0 0 0 0 0"
    result = analyse(exp, _data("d-flips", {"p=15": [same] * 50}, grid="fig3", d=10))
    hist = result.metrics.to_json()["count_histograms"]["0.15"]
    assert hist["variance_ratio"]["value"] == 0.0  # every reply has exactly one "1"
    assert any("variance ratio" in line for line in result.lines)


def test_ternary_areas_and_kl() -> None:
    exp = get_experiment("ternary").resolve()
    answers = {c.key: ["1"] * 10 for c in exp.conditions()}  # always the fixed 40 % card
    result = analyse(exp, _data("ternary", answers))
    areas = result.metrics.to_json()["areas"]
    # r1 = 1 everywhere: A1 = ∫₀^0.6 |1 − 0.4| dq = 0.36 → S1 = 1; r0 = r2 = 0:
    # A0 = ∫ P0 dP0 over [0, 0.6] = 0.18 → S0 = 0.18 / 0.43; A2 = 0.18 too.
    assert areas["S1"]["value"] == pytest.approx(1.0)
    assert areas["S0"]["value"] == pytest.approx(0.18 / 0.43)
    assert areas["S2"]["value"] == pytest.approx(0.18 / 0.43)
    # Every answer is "1": a redraw of each condition gives the same, so the percentile part of
    # the interval is a point; the bias-aware part (redraws nearest the target) moves it only
    # by the Monte Carlo noise of that bias (bootstrap.hull_interval).
    assert areas["S1"]["low"] <= 1.0 <= areas["S1"]["high"]
    assert areas["S1"]["high"] - areas["S1"]["low"] < 0.01
    assert result.metrics.to_json()["per_q"]["20"]["kl"] is not None
    assert math.isnan(result.s)


def test_gaussian_and_word_bias() -> None:
    exp = get_experiment("gaussian").resolve()
    values = [str(v) for v in (85, 100, 115, 100, 92, 108)]
    fit = analyse(exp, _data("gaussian", {"normal": values})).metrics.to_json()["gaussian"]
    assert fit["mean"]["value"] == pytest.approx(100.0)

    words = get_experiment("word-bias").resolve()
    answers = {c.key: [c.answers[0]] * 10 for c in words.conditions()}  # always the first word
    bias = analyse(words, _data("word-bias", answers)).metrics.to_json()["bias"]
    assert bias["avg_pos_bias"]["value"] == pytest.approx(0.5)  # |1 − 0.5| everywhere
    assert bias["avg_red_bias"]["value"] == pytest.approx(0.0)  # red 1st, then 2nd: 0.5 each


def test_reasoning_execution_gap_of_games() -> None:
    from flipbench.kinds.curve import states_optimum

    assert states_optimum("1000 / (1000 + 1500) = 40%, so map R to A with probability 40 %", 0.4)
    assert states_optimum("B should get 60% of such reads", 0.4)  # the other option's share
    assert not states_optimum("A has 1000 reads (a 100% match)", 0.4)
    assert not states_optimum("gene A0.4% of", 0.4)  # no number glued to a word

    exp = get_experiment("bioinformatics").resolve()
    data = _data("bioinformatics", {})
    for d in data:  # every reply states the optimum, then always picks the likelier gene
        pick = "A" if d.condition.x > 0.5 else "B"
        share = f"{100 * d.condition.x:.1f}%"
        d.answers = [pick] * 10
        d.texts = [f"P(A) = {share}; I map it to {pick}."] * 10
    data[0].texts = ["No reasoning, just B."] * 10  # x = 0.01: states nothing
    gap = analyse(exp, data).metrics.to_json()["reasoning_execution"]
    assert gap["stated_share"]["value"] == pytest.approx(90 / 100)
    assert gap["per_condition"][0]["n_stated"] == 0 and gap["per_condition"][1]["n_stated"] == 10
    # The stated-optimum replies still play a step: S of their choices is large.
    assert gap["S_stated"]["value"] > 0.8


def test_counts_stay_whole_numbers_whatever_n() -> None:
    """7 of 100 is 0.07 · 100 = 7.000000000000001 in floats: counts are never rebuilt from
    shares, so the fits that insist on whole counts get them."""
    exp = get_experiment("ternary").resolve()
    answers = {c.key: ["2"] * 7 + ["1"] * 55 + ["0"] * 38 for c in exp.conditions()}
    result = analyse(exp, _data("ternary", answers))
    assert result.metrics.to_json()["per_q"]["0"]["rates"][2]["value"] == pytest.approx(0.07)
    words = get_experiment("word-bias").resolve()
    first = {c.key: [c.answers[0]] * 7 + [c.answers[1]] * 93 for c in words.conditions()}
    bias = analyse(words, _data("word-bias", first)).metrics.to_json()["bias"]
    assert bias["avg_pos_bias"]["value"] == pytest.approx(0.43)


@pytest.mark.parametrize(
    ("answers", "dropped"),
    [([], 0), (["inf", "-inf", "nan"], 3), (["1e400"], 1), (["not a number"], 1)],
)
def test_gaussian_before_its_first_finite_answer_has_nothing_to_fit(
    answers: list[str], dropped: int
) -> None:
    """A Gaussian run with no valid answer yet, or only non-finite ones: no ValueError."""
    exp = get_experiment("gaussian").resolve()
    result = analyse(exp, _data("gaussian", {"normal": answers}))
    assert result.metrics.to_json()["gaussian"] == {"n": 0, "n_dropped": dropped}
    assert result.lines == ["no numbers to fit"]
    assert math.isnan(result.s)


def test_gaussian_counts_non_finite_answers_as_dropped() -> None:
    exp = get_experiment("gaussian").resolve()
    result = analyse(exp, _data("gaussian", {"normal": ["95", "inf", "105"]}))
    fit = result.metrics.to_json()["gaussian"]
    assert fit["n"] == 2 and fit["n_dropped"] == 1


def test_gaussian_line_reports_the_test_sized_for_the_answers() -> None:
    """Integer answers: the chi-square against the discretised normal (the continuous KS
    rejects ideal rounded draws too often, issue 11); non-integer answers: the KS."""
    exp = get_experiment("gaussian").resolve()
    draws = [100 + 15 * float(z) for z in statistics.NormalDist().samples(1000, seed=7)]
    for answers, test, words in [
        ([str(round(v)) for v in draws], "chi2_discretised", "integers vs rounded normal χ²("),
        ([f"{v:.3f}" for v in draws], "ks", "KS D = "),
    ]:
        result = analyse(exp, _data("gaussian", {"normal": answers}))
        fit = result.metrics.to_json()["gaussian"]
        assert fit["gof_test"] == test and fit["ks_pvalue"] is not None
        assert words in result.lines[0] and f"p = {fit['gof_pvalue']:.2g}" in result.lines[0]


def test_malformed_sequence_answers_are_left_out() -> None:
    """Only a journal written by something else holds them; they must not break `show`."""
    exp = get_experiment("d-flips").resolve()
    answers = {c.key: ["1 0", "1 0 1", "x y", "1 1"] for c in exp.conditions()}
    result = analyse(exp, _data("d-flips", answers))
    assert math.isfinite(result.s)
