"""Figures of whole runs, drawn from real journals: every experiment kind, alone and overlaid.

The runs are synthetic (tests/synthetic_runs.py) but journaled exactly as the runner does,
so each figure goes through `compute_results` and the metrics' JSON like a real report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from synthetic_runs import empty_run, gaussian_results, journal_with, kinds, make_run, run_id_of

from flipbench.figures.common import fmt_s
from flipbench.figures.figure import overlay_title, run_title
from flipbench.figures.panels import (
    GaussianSample,
    WordPair,
    gaussian_panels,
    word_bias_runs,
)
from flipbench.figures.run_data import pick_p, shown_positions
from flipbench.gaussfit import GaussianFit
from flipbench.metric_models import GaussianMetrics
from flipbench.report.run_figures import (
    figures_for,
    figures_for_run,
    overlay_figures,
    overlay_figures_for_runs,
)
from flipbench.results import compute_results
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ("model-a", "paper/gpt-4o")
NAMES = list(kinds())


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Journal:
    """One journal with a run of every kind for both models (run id `<name>:<model>`)."""
    return journal_with(tmp_path_factory.mktemp("journal"), list(kinds()), MODELS)


def svg_text(path: Path) -> str:
    """All text drawn into the SVG (it must parse as an SVG document)."""
    root = ET.parse(path).getroot()
    assert root.tag.rpartition("}")[2] == "svg"
    return "\n".join(t for el in root.iter() for t in [el.text] if t)


def check(paths: list[Path], stems: list[str]) -> str:
    """PNG + SVG per stem, in order, real files; returns the text of all the SVGs."""
    assert [p.name for p in paths] == [f"{s}.{ext}" for s in stems for ext in ("png", "svg")]
    texts = []
    for path in paths:
        if path.suffix == ".png":
            data = path.read_bytes()
            assert data.startswith(PNG_MAGIC) and len(data) > 5_000
        else:
            texts.append(svg_text(path))
    return "\n".join(texts)


# ----- one run ---------------------------------------------------------------------------------

SINGLE = {
    "flip": (
        ["response_curve"],
        ["single-flip · model-a · sample", "grid t2 · N = 40 · T = 1", 'requested p = P("1")'],
    ),
    "d-flips": (
        ["position_curves", "position_s", "serial_tests"],
        [
            "d-flips (D = 2) · model-a",
            "j = 2 (S = ",
            "Mean(r) (S = ",
            "S of the running mean",
            "autocorrelation by lag",
            "the runs are fixed by",
        ],
    ),
    "d-flips-10": (
        ["position_curves", "position_s", "serial_tests", "count_histograms"],
        [
            "4 of D = 10 positions shown",
            "i.i.d. 95 % band",
            "runs observed / expected",
            "j = 10 (S = ",
            "variance ratio",
            "p = 15%",
            "p = 85%",
        ],
    ),
    "d-flips-100": (
        ["position_curves", "position_s", "serial_tests", "count_histograms"],
        ["d-flips (D = 100)", "j = 50 (S = ", "p = 45%", 'number of "1"s in a reply of D = 100'],
    ),
    "chained": (
        ["position_curves", "position_s", "serial_tests"],
        ["chained-flips · model-a", "Mean(r) (S = ", "autocorrelation ρ_k"],
    ),
    "ternary": (
        ["ternary"],
        ['requested q = P("2")', 'observed r2 = share of "2"', 'requested P("1") = 40%'],
    ),
    "gaussian": (["gaussian"], ["gaussian · model-a · sample", "KS D = ", "requested N(100, 15)"]),
    "word-pair": (
        ["word_bias"],
        [
            "word-bias · model-a · sample",
            "T = 1 · partial (100% of the grid) · p = 50%",
            "luxury / affordable",
            "37 / 50",
        ],
    ),
    "bioinformatics": (
        ["response_curve"],
        ["optimal P(A)  [A vs B]", "observed share of A", "direction score d = "],
    ),
    "matching-pennies": (["response_curve"], ["optimal P(Heads)  [Heads vs Tails]"]),
    "business": (["response_curve"], ["observed share of Luxury"]),
}


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_gets_its_panels(journal: Journal, tmp_path: Path, name: str) -> None:
    stems, labels = SINGLE[name]
    text = check(figures_for_run(journal, run_id_of(name, "model-a"), tmp_path), stems)
    for label in labels:
        assert label in text, label
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{s}.{ext}" for s in stems for ext in ("png", "svg")
    )


@pytest.mark.parametrize("name", ["flip", "business", "d-flips"])
def test_the_headline_s_is_the_runs_own(journal: Journal, tmp_path: Path, name: str) -> None:
    results = compute_results(journal, run_id_of(name, "model-a"))
    text = check(figures_for(results, tmp_path), SINGLE[name][0])
    assert f"S = {fmt_s(results.s)}" in text


def test_gaussian_panel_uses_the_raw_answers(journal: Journal, tmp_path: Path) -> None:
    results = compute_results(journal, "gaussian.model-a")
    values = np.array([float(a) for _, answers, _ in results.raw for a in answers])
    text = check(figures_for(results, tmp_path), ["gaussian"])
    assert f"n = {values.size}" in text
    assert f"mean = {values.mean():.1f}, sd = {values.std(ddof=1):.1f}" in text
    assert "rebuilt" not in text


def test_gaussian_without_raw_answers_falls_back_to_the_histogram(
    journal: Journal, tmp_path: Path
) -> None:
    results = gaussian_results(journal, "gaussian.model-a")
    text = check(figures_for(results, tmp_path), ["gaussian"])
    assert "answers rebuilt from 5-wide bins" in text
    assert isinstance(results.metrics, GaussianMetrics)
    assert isinstance(results.metrics.gaussian, GaussianFit)
    assert f"n = {results.metrics.gaussian.n}" in text


def test_an_exact_run_draws_points_with_coverage(tmp_path: Path) -> None:
    experiment = get_experiment("single-flip").resolve(grid="t2")
    with Journal(tmp_path / "j.db") as journal:
        journal.create_run(
            run_id="x", experiment=experiment.name, model="local/m", mode="exact", config={},
            definition=experiment.model_dump(mode="json"),
            definition_hash=experiment.definition_hash(), versions={},
        )  # fmt: skip
        for cond in experiment.conditions():
            one = 0.05 if cond.x < 0.5 else 0.95
            journal.record("x", SampleRecord(
                condition=cond.key, sample_index=0, status="ok", request={}, response=None,
                valid=True, probs={"1": one, "0": 1 - one}, coverage=0.98,
            ))  # fmt: skip
        text = check(figures_for_run(journal, "x", tmp_path / "out"), ["response_curve"])
    assert 'exact P("1") renormalised' in text
    assert "coverage 0.980–0.980" in text


@pytest.mark.parametrize("name", ["single-flip", "d-flips", "chained-flips", "ternary",
                                  "gaussian", "word-bias", "bioinformatics"])  # fmt: skip
def test_a_run_without_a_valid_answer_has_no_figure(tmp_path: Path, name: str) -> None:
    with Journal(tmp_path / "j.db") as journal:
        empty_run(journal, "e", name)
        assert figures_for_run(journal, "e", tmp_path / "out") == []
        journal.create_run(
            run_id="none", experiment=name, model="m", mode="sample", config={},
            definition=get_experiment(name).resolve().model_dump(mode="json"),
            definition_hash="h", versions={},
        )  # fmt: skip
        assert figures_for_run(journal, "none", tmp_path / "out") == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["single-flip", "d-flips", "word-bias", "business"])
def test_empty_results_give_no_figure(tmp_path: Path, name: str) -> None:
    with Journal(tmp_path / "j.db") as journal:
        empty_run(journal, "e", name)
        results = compute_results(journal, "e")
    assert figures_for(results, tmp_path / "out") == []
    assert overlay_figures([results, results], tmp_path / "out", "o") == []


def test_a_partial_run_draws_the_conditions_it_has(tmp_path: Path) -> None:
    experiment, answer = kinds()["d-flips-10"]
    skipped = experiment.conditions()[-1]  # p = 85 %: no reply yet
    with Journal(tmp_path / "j.db") as journal:
        make_run(journal, "r", experiment, answer, n=20, skip=frozenset({skipped.key}))
        text = check(
            figures_for_run(journal, "r", tmp_path / "out"),
            ["position_curves", "position_s", "serial_tests", "count_histograms"],
        )
    assert "p = 55%" in text and "p = 85%" not in text


# ----- several runs ----------------------------------------------------------------------------

OVERLAY = {
    "flip": ["overlay"],
    "d-flips": ["overlay", "overlay_position_s"],
    "d-flips-10": ["overlay", "overlay_position_s", "overlay_count_histograms"],
    "chained": ["overlay", "overlay_position_s"],
    "ternary": ["overlay"],
    "word-pair": ["overlay"],
    "bioinformatics": ["overlay"],
}


@pytest.mark.parametrize("name", list(OVERLAY))
def test_overlay_labels_each_run_by_its_model(journal: Journal, tmp_path: Path, name: str) -> None:
    results = [compute_results(journal, run_id_of(name, m)) for m in MODELS]
    text = check(overlay_figures(results, tmp_path, "overlay"), OVERLAY[name])
    for model in MODELS:
        assert model in text
    if name in ("flip", "bioinformatics", "d-flips"):  # curves: each S in the legend
        for r, model in zip(results, MODELS, strict=True):
            assert f"{model} (S = {fmt_s(r.s)}" in text


def test_overlay_of_gaussian_runs_has_a_panel_each(journal: Journal, tmp_path: Path) -> None:
    results = [compute_results(journal, run_id_of("gaussian", m)) for m in MODELS]
    text = check(overlay_figures(results, tmp_path, "g"), ["g"])
    assert text.count("KS D = ") == 2 and all(m in text for m in MODELS)


def test_overlay_from_the_journal_and_histograms_a_row_per_p(
    journal: Journal, tmp_path: Path
) -> None:
    ids = [run_id_of("d-flips-10", m) for m in MODELS]
    text = check(
        overlay_figures_for_runs(journal, ids, tmp_path, "d10"),
        ["d10", "d10_position_s", "d10_count_histograms"],
    )
    # Three p (15, 30, 45 %) for each of the two models: six panels, model by model per row.
    for p in ("15%", "30%", "45%"):
        for model in MODELS:
            assert f"p = {p} · {model}" in text
    assert "p = 55%" not in text


def test_overlay_of_different_d_names_d_in_the_labels(journal: Journal, tmp_path: Path) -> None:
    runs = [compute_results(journal, r) for r in ("d-flips-10.model-a", "d-flips.paper.gpt-4o")]
    stems = ["mix", "mix_position_s", "mix_count_histograms"]
    text = check(overlay_figures(runs, tmp_path, "mix"), stems)
    assert "model-a · D = 10" in text and "paper/gpt-4o · D = 2" in text


def test_same_model_twice_is_told_apart_by_run_id(journal: Journal, tmp_path: Path) -> None:
    one = compute_results(journal, "flip.model-a")
    text = check(overlay_figures([one, one], tmp_path, "twice"), ["twice"])
    assert text.count("model-a (flip.model-a) (S = ") == 2


def test_overlay_leaves_out_runs_without_answers(journal: Journal, tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as other:
        empty_run(other, "e", "single-flip")
        empty = compute_results(other, "e")
    runs = [compute_results(journal, "flip.model-a"), empty]
    text = check(overlay_figures(runs, tmp_path / "out", "o"), ["o"])
    assert "model-a" in text and "invalid" not in text


def test_overlay_refuses_runs_of_different_experiments(journal: Journal, tmp_path: Path) -> None:
    runs = [compute_results(journal, r) for r in ("flip.model-a", "business.model-a")]
    with pytest.raises(ValueError, match="different experiments: business, single-flip"):
        overlay_figures(runs, tmp_path, "o")
    with pytest.raises(ValueError, match="no runs"):
        overlay_figures([], tmp_path, "o")
    assert not list(tmp_path.iterdir())


# ----- helpers and the panels added for runs ---------------------------------------------------


def test_shown_positions_and_histogram_p() -> None:
    assert shown_positions(2) is None and shown_positions(4) is None
    assert shown_positions(10) == [1, 2, 5, 10]
    assert shown_positions(100) == [1, 2, 5, 10, 50, 100]
    grid = [i / 20 for i in range(21)]
    assert pick_p(grid, 2) == [0.15, 0.45]
    assert pick_p(grid, 6) == [0.15, 0.3, 0.45, 0.55, 0.7, 0.85]
    assert pick_p([0.0, 0.45, 1.0], 6) == [0.45]
    assert pick_p([0.0, 1.0], 6) == [0.0, 1.0]


def test_word_bias_runs_keeps_rows_aligned_when_a_pair_is_missing(tmp_path: Path) -> None:
    a = [WordPair("sun", "moon", 0.8, 0.4), WordPair("cat", "dog", 0.7, 0.45)]
    b = [WordPair("cat", "dog", 0.6, 0.5, (0.5, 0.7), (0.4, 0.6))]
    text = check(word_bias_runs([("A", a), ("B", b)], tmp_path, "w"), ["w"])
    assert "sun / moon" in text and "cat / dog" in text and "B" in text
    with pytest.raises(ValueError, match="no word pairs"):
        word_bias_runs([("A", [])], tmp_path, "x")


def test_gaussian_panels_share_one_density_scale(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    samples = [GaussianSample(rng.normal(100, sd, 300), label=f"sd {sd}") for sd in (3, 15)]
    text = check(gaussian_panels(samples, tmp_path, "g", title="two"), ["g"])
    assert "sd 3" in text and "sd 15" in text
    with pytest.raises(ValueError, match="no Gaussian samples"):
        gaussian_panels([], tmp_path, "x")


# ----- axes that fit the grid, titles that carry the settings (issue 14) ----------------------


def _tick_percents(text: str, xlabel: str = 'requested p = P("1")') -> list[float]:
    """The x tick labels of a response curve (drawn before its x label), in percent."""
    lines = [t.strip() for t in text.splitlines() if t.strip()]
    before = lines[: lines.index(xlabel)]
    return [float(t.removesuffix("%")) for t in before if t.endswith("%") and t[0].isdigit()]


@pytest.mark.parametrize(
    ("grid", "low", "high"), [("zoom", 44.0, 56.0), ("logzoom", 49.6, 50.4), ("default", 0, 100)]
)
def test_the_p_axis_fits_the_grid(tmp_path: Path, grid: str, low: float, high: float) -> None:
    experiment = get_experiment("single-flip").resolve(grid=grid, n=30)
    with Journal(tmp_path / "j.db") as journal:
        make_run(journal, "r", experiment, kinds(2.0)["flip"][1])
        journal.set_status("r", "complete")
        text = check(figures_for_run(journal, "r", tmp_path / "out"), ["response_curve"])
    ticks = _tick_percents(text)
    assert len(ticks) >= 3, text
    assert all(low <= t <= high for t in ticks), ticks
    if grid == "default":  # a grid over [0, 1] keeps the paper's full axis
        assert ticks[0] == 0 and ticks[-1] == 100
    else:
        assert max(ticks) - min(ticks) <= high - low
    assert f"grid {grid} · N = 30 · T = 1" in text
    assert "partial" not in text


def test_a_partial_runs_title_says_so_and_exact_titles_have_no_n(tmp_path: Path) -> None:
    experiment = get_experiment("single-flip").resolve(n=10, temperature=0.7)
    keys = [c.key for c in experiment.conditions()]
    with Journal(tmp_path / "j.db") as journal:
        make_run(journal, "cut", experiment, kinds()["flip"][1], skip=frozenset(keys[6:]))
        text = check(figures_for_run(journal, "cut", tmp_path / "cut"), ["response_curve"])
        assert "grid default · N = 10 · T = 0.7 · partial (29% of the grid)" in text
        results = compute_results(journal, "cut")
    exact = replace(results, run=replace(results.run, mode="exact", status="complete"))
    assert "exact\ngrid default · T = 0.7 · S 75% extrapolated" in run_title(exact)


def test_an_overlay_title_names_the_settings_its_runs_share_or_not(
    journal: Journal, tmp_path: Path
) -> None:
    runs = [compute_results(journal, run_id_of("flip", m)) for m in MODELS]
    assert overlay_title(runs) == "single-flip · sample\ngrid t2 · N = 40 · T = 1"
    other = replace(runs[1], experiment=runs[1].experiment.model_copy(update={"n": 100}))
    assert overlay_title([runs[0], other]).endswith("grid t2 · N = 40/100 · T = 1")
    text = check(overlay_figures(runs, tmp_path, "o"), ["o"])
    assert "grid t2 · N = 40 · T = 1" in text
