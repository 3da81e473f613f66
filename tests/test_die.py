"""The die roll: an experiment added as one module on the categorical kind (issue 10)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.kinds import get_kind
from flipbench.metric_models import CategoricalMetrics
from flipbench.parse import parse_reply
from flipbench.report.run_figures import figures_for
from flipbench.results import compute_results
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import Condition
from tests.synthetic_runs import make_run

FACES = ("1", "2", "3", "4", "5", "6")


def test_the_die_is_found_and_its_conditions_ask_what_they_score() -> None:
    die = get_experiment("die")
    assert die.kind == "categorical" and get_kind(die.kind).names == ("categorical",)
    loaded = die.resolve()
    assert loaded.grid == "loaded" and loaded.answers == FACES and loaded.first == "6"
    conditions = loaded.conditions()
    assert [c.key for c in conditions] == [f"b={b}" for b in (0, 10, 30, 50, 70, 90, 100)]
    for c in conditions:
        assert c.target is not None and math.isclose(sum(c.target.values()), 1.0)
        assert c.target["6"] == pytest.approx(c.x)
        assert len({c.target[f] for f in FACES[:-1]}) == 1  # faces 1–5 share the rest
    b30 = conditions[2].messages[-1]["content"]
    assert "lands on 6 30% of the time" in b30 and "(1, 2, 3, 4 and 5) 14% of the time" in b30
    fair = die.resolve(grid="fair").conditions()
    assert len(fair) == 1 and fair[0].target == {f: pytest.approx(1 / 6) for f in FACES}
    assert "one sixth" in fair[0].messages[-1]["content"]


def test_faces_are_read_as_whole_tokens() -> None:
    assert parse_reply("**4**", FACES, "whole-token").answer == "4"
    assert parse_reply("I rolled a 6.", FACES, "whole-token").answer == "6"
    assert parse_reply("7", FACES, "whole-token").answer is None
    assert parse_reply("16", FACES, "whole-token").answer is None


def _as_requested(c: Condition, i: int, rng: np.random.Generator) -> str:
    assert c.target is not None
    return str(rng.choice(list(c.target), p=list(c.target.values())))


def _argmax(c: Condition, i: int, rng: np.random.Generator) -> str:
    assert c.target is not None
    return max(c.target, key=lambda f: (c.target[f], f))  # type: ignore[index]


def test_a_calibrated_die_passes_and_an_argmax_die_fails(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    die = get_experiment("die").resolve(n=400)
    make_run(journal, "calibrated", die, _as_requested, seed=3)
    make_run(journal, "argmax", die, _argmax)
    good, bad = compute_results(journal, "calibrated"), compute_results(journal, "argmax")

    assert isinstance(good.metrics, CategoricalMetrics)
    assert isinstance(bad.metrics, CategoricalMetrics)
    fits = good.metrics.per_condition
    assert set(fits) == {"0", "10", "30", "50", "70", "90", "100"}
    for value, fit in fits.items():
        for face_rate, target in zip(fit.rates, fit.requested, strict=True):  # Wilson per face
            assert face_rate.low - 0.02 <= target <= face_rate.high + 0.02, value
        assert fit.chi_square is not None and fit.chi_square.p_value > 1e-3, value
        assert fit.tv.value < 0.12
    assert good.s < 0.15  # face 6 tracks b

    worst = bad.metrics.per_condition
    # b = 30: the argmax answers 6 every time, TV = 1 − 0.30; b = 10: face 5 (18 %) wins.
    assert worst["30"].tv.value == pytest.approx(0.70)
    assert worst["10"].tv.value == pytest.approx(0.82)
    assert worst["30"].chi_square is not None and worst["30"].chi_square.p_value < 1e-50
    assert worst["0"].kl_infinite is False and worst["100"].tv.value == 0
    shown = bad.to_dict()["metrics"]["per_condition"]["30"]  # the JSON of `show`
    assert shown["tv"]["value"] == pytest.approx(0.70) and shown["answers"] == list(FACES)
    assert bad.s > 0.5
    assert any(line.startswith("b=30: TV 0.700") for line in bad.lines)

    paths = figures_for(good, tmp_path / "fig")
    assert {p.name for p in paths} >= {"answer_shares.png", "answer_shares.svg",
                                       "response_curve.png"}  # fmt: skip
    assert all(p.stat().st_size > 1000 for p in paths)
    svg = (tmp_path / "fig" / "answer_shares.svg").read_text()
    assert "requested share" in svg and "b=30" in svg  # a panel per condition


@pytest.mark.slow
def test_exact_and_constrained_rolls_of_the_embedded_model_agree(tmp_path: Path) -> None:
    """`run die --mode exact --first-token` and `--constrained --n 100` on local/smollm2: each
    face's sampled rate lies in the 99.9 % binomial interval of its exact probability."""
    db = tmp_path / "j.db"
    # The first-token reading: one-token constrained sampling draws the next token renormalised
    # over the faces, with no stop factor (whole answers also weigh how often "2" goes on as
    # "20…": docs/experiments.md, "Whole answers and constrained sampling").
    exact = start_run(
        RunConfig(experiment="die", mode="exact", first_token=True, run_id="exact"), db
    )
    sampled = start_run(
        RunConfig(experiment="die", constrained=True, n=100, seed=7, run_id="sampled"), db
    )
    assert exact.status == sampled.status == "complete"
    assert exact.results is not None and sampled.results is not None
    assert isinstance(exact.results.metrics, CategoricalMetrics)
    assert isinstance(sampled.results.metrics, CategoricalMetrics)
    e_fits = exact.results.metrics.per_condition
    s_fits = sampled.results.metrics.per_condition
    assert set(e_fits) == set(s_fits) and len(e_fits) == 7
    for value in e_fits:
        assert s_fits[value].n == 100 and e_fits[value].n is None
        for face, e, s in zip(FACES, e_fits[value].rates, s_fits[value].rates, strict=True):
            low, high = binom.ppf([0.0005, 0.9995], 100, e.value) / 100
            assert low <= s.value <= high, (value, face, e.value, s.value)
