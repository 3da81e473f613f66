"""Tests for flipbench.figures.panels: real PNG/SVG files, the text they carry, byte-identical
re-renders, and clear errors on bad input. Synthetic inputs only (no journal, no model)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flipbench.figures.figure import response_curve
from flipbench.figures.panels import (
    CountSample,
    GaussianSample,
    PositionS,
    Series,
    TernaryRates,
    WordPair,
    count_histograms,
    game_axis_labels,
    gaussian_panel,
    position_curves,
    position_s,
    position_s_curves,
    response_curves,
    ternary_panels,
    word_bias,
)
from flipbench.metrics import step_likeness
from flipbench.results import ConditionResult, RunResults
from flipbench.store import RunRow
from flipbench.tasks import get_experiment

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = np.round(np.arange(11) * 0.1, 10)
STEP = (GRID > 0.5).astype(float)  # a step at 50 %: S = 1 on this grid
Draw = Callable[[Path], list[Path]]


def svg_text(path: Path) -> str:
    """All text drawn into the SVG (fonttype 'none' keeps it as <text> elements)."""
    root = ET.parse(path).getroot()
    assert root.tag.rpartition("}")[2] == "svg"
    return "\n".join(t for el in root.iter() for t in [el.text] if t)


def assert_files(paths: list[Path], stem: str) -> str:
    """Two real files, PNG then SVG, named after the stem; returns the SVG's text."""
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    png, svg = paths
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000
    return svg_text(svg)


# ----- one synthetic input per panel type --------------------------------------------------


def _single(out: Path) -> list[Path]:
    s = Series("observed", GRID, STEP, np.clip(STEP - 0.1, 0, 1), np.clip(STEP + 0.1, 0, 1), s=0.8)
    return response_curves([s], out, "single", title="Fig. 1 test", note="invalid 0/1100")


def _overlay(out: Path) -> list[Path]:
    xl, yl = game_axis_labels("Heads", "Tails")
    series = [
        Series("model A", GRID, STEP, s=step_likeness(GRID, STEP)),
        Series("model B", GRID, GRID, s=0.0, s_ci=(0.0, 0.05)),
    ]
    return response_curves(series, out, "overlay", xlabel=xl, ylabel=yl)


def _positions(out: Path) -> list[Path]:
    r = np.vstack([STEP, 1 - STEP * 0.5])
    return position_curves(GRID, r, out, "positions", lo=r * 0.9, hi=np.minimum(r * 1.1, 1))


def _counts(out: Path) -> list[Path]:
    samples = [
        CountSample(0.15, 10, np.array([1, 1, 2, 1, 0, 1, 1, 2]), "model A"),
        CountSample(0.45, 10, np.array([4, 5, 4, 4, 5, 3])),
    ]
    return count_histograms(samples, out, "counts", title="D = 10")


def _position_s(out: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    noisy = {d: np.clip(GRID + rng.normal(0, 0.2, (d, GRID.size)), 0, 1) for d in (2, 10)}
    curves = [position_s(GRID, r) for r in noisy.values()]
    return position_s_curves(curves, out, "position_s")


def _ternary(out: Path) -> list[Path]:
    q = np.array([0.0, 0.2, 0.4, 0.6])
    r = np.array([[1, 0, 0], [0.2, 0.8, 0], [0, 0.9, 0.1], [0, 0, 1]], dtype=float)
    rates = [TernaryRates(q, r, r * 0.8, np.minimum(r * 1.2, 1), "model A"), TernaryRates(q, r)]
    values = np.array([100, 100, 105, 98, 112, 100, 95, 300], dtype=float)
    return ternary_panels(rates, out, "ternary", gaussian=GaussianSample(values))


def _gaussian(out: Path) -> list[Path]:
    return gaussian_panel(GaussianSample(np.array([90.0, 100.0, 101.0, 120.0])), out, "gauss")


def _words(out: Path) -> list[Path]:
    pairs = [
        WordPair("luxury", "affordable", 0.9, 0.3, (0.82, 0.95), (0.22, 0.4)),
        WordPair("1", "0", 0.5, 0.5),
        WordPair("37", "50", float("nan"), 0.1),
    ]
    return word_bias(pairs, out, "words", title="model A")


ALL: dict[str, Draw] = {
    "single": _single,
    "overlay": _overlay,
    "positions": _positions,
    "counts": _counts,
    "position_s": _position_s,
    "ternary": _ternary,
    "gauss": _gaussian,
    "words": _words,
}


# ----- files and their text ----------------------------------------------------------------


def test_single_response_curve(tmp_path: Path) -> None:
    text = assert_files(_single(tmp_path), "single")
    for expected in ('requested p = P("1")', "response rate r", "S = 0.800", "invalid 0/1100"):
        assert expected in text
    assert "Fig. 1 test" in text
    assert "100%" in text  # percent tick labels
    assert "|r − p|" in text  # the shaded area is in the legend


def test_overlay_puts_s_in_the_legend_and_options_on_the_axes(tmp_path: Path) -> None:
    text = assert_files(_overlay(tmp_path), "overlay")
    assert "model A (S = 1.000)" in text
    assert "model B (S = 0.000  [0.000, 0.050])" in text
    assert "optimal P(Heads)  [Heads vs Tails]" in text
    assert "observed share of Heads" in text
    assert "100%" in text


def test_position_curves_show_s_of_each_position_and_of_the_mean(tmp_path: Path) -> None:
    text = assert_files(_positions(tmp_path), "positions")
    r2 = 1 - STEP * 0.5
    mean = (STEP + r2) / 2
    assert f"j = 1 (S = {step_likeness(GRID, STEP):.3f})" in text
    assert f"j = 2 (S = {step_likeness(GRID, r2):.3f})" in text
    assert f"Mean(r) (S = {step_likeness(GRID, mean):.3f})" in text


def test_count_histograms_print_the_variance_ratio(tmp_path: Path) -> None:
    text = assert_files(_counts(tmp_path), "counts")
    counts = np.array([1, 1, 2, 1, 0, 1, 1, 2])
    ratio = np.var(counts, ddof=1) / (10 * 0.15 * 0.85)
    assert f"variance ratio = {ratio:.2f}" in text
    assert "p = 15% · model A" in text and "p = 45%" in text
    assert 'number of "1"s in a reply of D = 10' in text
    assert "Binomial(D, p) probability" in text


def test_variance_ratio_is_nan_when_the_binomial_has_no_spread() -> None:
    assert np.isnan(CountSample(0.0, 10, np.array([0, 0, 1])).variance_ratio)
    assert np.isnan(CountSample(0.5, 10, np.array([5])).variance_ratio)


def test_position_s_curves(tmp_path: Path) -> None:
    text = assert_files(_position_s(tmp_path), "position_s")
    for expected in ("D = 2", "D = 10", "S of each position", "S of the running mean"):
        assert expected in text


def test_position_s_matches_the_metric() -> None:
    r = np.vstack([STEP, GRID, 1 - GRID])
    ps = position_s(GRID, r, "x")
    assert ps.d == 3 and ps.name == "x"
    assert ps.s_j == pytest.approx([step_likeness(GRID, row) for row in r])
    running = [r[:1].mean(0), r[:2].mean(0), r.mean(0)]
    assert ps.s_running == pytest.approx([step_likeness(GRID, row) for row in running])


def test_ternary_panels_with_the_gaussian_panel(tmp_path: Path) -> None:
    text = assert_files(_ternary(tmp_path), "ternary")
    for expected in (
        'requested P("0") = 60% − q',
        'observed r2 = share of "2"',
        'requested q = P("2")',
        "model A",
        "KS D =",
        "1 outside the axis",
        "requested N(100, 15)",
    ):
        assert expected in text


def test_gaussian_panel_alone(tmp_path: Path) -> None:
    text = assert_files(_gaussian(tmp_path), "gauss")
    assert "n = 4" in text and "number returned" in text


def test_word_bias(tmp_path: Path) -> None:
    text = assert_files(_words(tmp_path), "words")
    for expected in ("luxury / affordable", "37 / 50", "no data", "red word listed second"):
        assert expected in text
    assert "model A · p = 50%" in text


def test_dollar_signs_are_drawn_literally(tmp_path: Path) -> None:
    s = Series("$10M vs $1M", GRID, STEP)
    assert "$10M vs $1M" in assert_files(response_curves([s], tmp_path, "money"), "money")


# ----- determinism -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL))
def test_rerender_is_byte_identical(name: str, tmp_path: Path) -> None:
    first = ALL[name](tmp_path / "a")
    second = ALL[name](tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_render_in_a_fresh_process_is_byte_identical(tmp_path: Path) -> None:
    here = _overlay(tmp_path / "here")
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
        "import test_panels as t; t._overlay(Path(sys.argv[1]))"
    )
    there = tmp_path / "there"
    args = [sys.executable, "-c", code, str(there), str(Path(__file__).parent)]
    subprocess.run(args, check=True, timeout=120)
    for path in here:
        assert path.read_bytes() == (there / path.name).read_bytes(), path.name


# ----- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Series("a", [0.1, 0.2], [0.5]), "differ in shape"),
        (lambda: Series("a", [], []), "empty"),
        (lambda: Series("", [0.1], [0.5]), "label must not be empty"),
        (lambda: Series("a", [10, 20], [0.5, 0.5]), "not percentages"),
        (lambda: Series("a", [0.1, 0.2], [np.nan, np.nan]), "no finite value"),
        (lambda: Series("a", [0.1, np.nan], [0.1, 0.2]), "finite"),
        (lambda: Series("a", [0.1], [0.5], lo=[0.4]), "both lo and hi"),
        (lambda: Series("a", [0.1], [0.5], lo=[0.6], hi=[0.4]), "lo must not exceed hi"),
        (lambda: Series("a", [0.1], [0.5], lo=[0.4, 0.4], hi=[0.6, 0.6]), "differ in shape"),
        (lambda: CountSample(0.15, 10, []), "empty"),
        (lambda: CountSample(15, 10, [1]), "not a percentage"),
        (lambda: CountSample(0.15, 10, [11]), r"integers in \[0, 10\]"),
        (lambda: CountSample(0.15, 10, [1.5]), "integers"),
        (lambda: PositionS(3, np.zeros(2), np.zeros(3)), "s_j must have 3 values"),
        (lambda: PositionS(0, np.zeros(0), np.zeros(0)), "d"),
        (lambda: TernaryRates([0.0, 0.2], np.zeros((3, 3))), r"shape \(2, 3\)"),
        (lambda: TernaryRates([0.0, 0.7], np.zeros((2, 3))), "q = P"),
        (lambda: GaussianSample(np.array([]), 100, 15), "empty"),
        (lambda: GaussianSample(np.array([1.0]), 100, 0), "sd > 0"),
        (lambda: WordPair("", "b", 0.5, 0.5), "non-empty words"),
        (lambda: WordPair("a", "b", 50, 0.5), "not percentages"),
        (lambda: WordPair("a", "b", 0.5, 0.5, (0.6, 0.4)), "lo > hi"),
    ],
)
def test_bad_inputs_raise_clear_errors(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (lambda out: response_curves([], out), "no series"),
        (lambda out: position_curves(GRID, np.zeros((2, 3)), out), r"shape \(D, 11\)"),
        (lambda out: position_curves(GRID, np.zeros(11), out), "2-dimensional"),
        (lambda out: position_curves(GRID, np.zeros((1, 11)), out, lo=np.zeros((1, 11))), "both"),
        (lambda out: position_s_curves([], out), "no curves"),
        (lambda out: count_histograms([], out), "no count samples"),
        (lambda out: ternary_panels([], out), "nothing to draw"),
        (lambda out: word_bias([], out), "no word pairs"),
        (lambda out: response_curves([Series("a", [0.1], [0.2])], out, "a/b"), "stem"),
    ],
)
def test_bad_drawing_calls_raise_and_write_nothing(
    draw: Draw, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        draw(tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ----- the run figure keeps working on top of the panels --------------------------------------


def _results(mode: str) -> RunResults:
    run = RunRow("r1", "single_flip", "local/test", mode, "complete", "", "", {}, {}, "h", {}, None)
    conds = [
        ConditionResult(f"p={p:g}", float(p), float(r), max(r - 0.1, 0), min(r + 0.1, 1), 10, 11,
                        coverage=0.99 if mode == "exact" else None)
        for p, r in zip(GRID, STEP, strict=True)
    ]  # fmt: skip
    conds.append(ConditionResult("p=x", 0.55, float("nan"), float("nan"), float("nan"), 0, 3))
    experiment = get_experiment("single-flip").resolve()  # the figure reads its first answer
    return RunResults(run, experiment, conds, 0.8, (0.7, 0.9))


@pytest.mark.parametrize("mode", ["sample", "exact"])
def test_run_response_curve_still_draws(mode: str, tmp_path: Path) -> None:
    text = assert_files(response_curve(_results(mode), tmp_path), "response_curve")
    assert "single_flip · local/test · " + mode in text
    if mode == "exact":
        assert "S = 0.800" in text and "coverage 0.990–0.990" in text
        assert "[0.700" not in text
    else:
        assert "S = 0.800  [0.700, 0.900]" in text
        assert "invalid 14/124 (11.3%)" in text
