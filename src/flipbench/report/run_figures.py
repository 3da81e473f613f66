"""Every figure of a run, whatever its experiment, and overlays of several runs of one experiment.

``figures_for`` picks the paper's panels by the experiment's kind; ``overlay_figures`` puts
several models (the paper's, imported, next to a new run) on one figure. Both draw only what
the results hold: a run without a valid answer yet gives no figure rather than an error, so
that a report of a stopped or failing run still completes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from flipbench.report import run_data as rd
from flipbench.report.figure import response_curve, run_series, run_title
from flipbench.report.panels import (
    P_LABEL,
    R_LABEL,
    CountSample,
    Series,
    count_histograms,
    game_axis_labels,
    gaussian_panel,
    gaussian_panels,
    position_curves,
    position_s_curves,
    response_curves,
    ternary_panels,
    word_bias,
    word_bias_runs,
)
from flipbench.results import RunResults, compute_results
from flipbench.store import Journal

__all__ = ["figures_for", "figures_for_run", "overlay_figures", "overlay_figures_for_runs"]

SEQUENCE_KINDS = ("d-flips", "chained")
MEAN_LABEL = 'Mean(r): share of "1" over all D positions'


def figures_for_run(journal: Journal, run_id: str, out_dir: Path) -> list[Path]:
    """All figures of one journaled run (see ``figures_for``).

    Returns [] before the first valid answer without computing anything, so that a run
    stopped at once (or one that only failed) still gets its report.
    """
    if not any(valid for valid, _, _ in journal.condition_counts(run_id).values()):
        return []
    return figures_for(compute_results(journal, run_id), out_dir)


def figures_for(results: RunResults, out_dir: Path) -> list[Path]:
    """The paper's panels for this run's kind, as PNG + SVG paths; [] before any valid answer.

    flip: response curve; game: the same with the options on the axes; d-flips / chained:
    r_j and Mean(r) against p, S_j and running S, and (D >= 10) count histograms; ternary,
    gaussian, word-pair: their Fig. 4 / 5 panels (the Gaussian one from the raw answers).
    """
    if not rd.has_answers(results):
        return []
    kind = results.experiment.kind
    title = run_title(results)
    if kind == "flip":
        return response_curve(results, out_dir)
    if kind == "game":
        return _game_curve(results, out_dir)
    if kind in SEQUENCE_KINDS:
        return _sequence_figures(results, out_dir, title)
    if kind == "ternary":
        rates = rd.ternary_rates(results)
        return ternary_panels([rates], out_dir, "ternary", title=title) if rates else []
    if kind == "gaussian":
        sample = rd.gaussian_sample(results)
        return gaussian_panel(sample, out_dir, "gaussian", title=title) if sample else []
    if kind == "word-pair":
        pairs = rd.word_pairs(results)
        return word_bias(pairs, out_dir, "word_bias", title=title) if pairs else []
    return response_curve(results, out_dir)  # a kind added later: at least its r(x)


def _game_curve(results: RunResults, out_dir: Path) -> list[Path]:
    first, second = results.experiment.first, rd.second_option(results)
    xlabel, ylabel = game_axis_labels(first, second)
    d = rd.num((results.metrics.get("direction_d") or {}).get("value"))
    extra = "" if math.isnan(d) else f"direction score d = {d:.3f}"
    return response_curve(results, out_dir, xlabel=xlabel, ylabel=ylabel, extra=extra)


def _sequence_figures(results: RunResults, out_dir: Path, title: str) -> list[Path]:
    pos = rd.positions(results)
    if pos is None:
        return []
    shown = rd.shown_positions(pos.d)
    intervals = pos.d <= 2  # with more curves the bars would hide them
    paths = position_curves(
        pos.p, pos.r, out_dir, "position_curves", title=title, positions=shown,
        lo=pos.lo if intervals else None, hi=pos.hi if intervals else None,
    )  # fmt: skip
    s_curve = rd.position_s(pos, f"D = {pos.d}")
    if s_curve is not None:
        paths += position_s_curves([s_curve], out_dir, "position_s", title=title)
    by_p = rd.count_samples(results)
    if by_p:
        samples = [by_p[p] for p in rd.pick_p(by_p, 6)]
        paths += count_histograms(samples, out_dir, "count_histograms", title=title)
    return paths


# ----- several runs of one experiment ----------------------------------------------------------


def overlay_figures_for_runs(
    journal: Journal, run_ids: Sequence[str], out_dir: Path, stem: str
) -> list[Path]:
    """``overlay_figures`` of journaled runs."""
    return overlay_figures([compute_results(journal, r) for r in run_ids], out_dir, stem)


def overlay_figures(results: Sequence[RunResults], out_dir: Path, stem: str) -> list[Path]:
    """Several runs of the same experiment on one figure each, labelled by model.

    Curves are overlaid (flip, game; Mean(r) and S_j for d-flips / chained); ternary,
    word-pair, Gaussian and count histograms get one panel per run. Runs without a valid
    answer are left out, and nothing is drawn when none is left. ``stem`` names the main
    figure; further ones are ``<stem>_position_s`` and ``<stem>_count_histograms``.
    Raises ValueError for runs of different experiments.
    """
    _check_same_experiment(results)
    runs = [r for r in results if rd.has_answers(r)]
    if not runs:
        return []
    labels = _labels(runs)
    pairs = list(zip(runs, labels, strict=True))
    kind = runs[0].experiment.kind
    title = runs[0].run.experiment
    if kind in SEQUENCE_KINDS:
        return _overlay_sequences(runs, labels, out_dir, stem, title)
    if kind == "ternary":
        rates = [t for r, label in pairs if (t := rd.ternary_rates(r, label)) is not None]
        return ternary_panels(rates, out_dir, stem, title=title) if rates else []
    if kind == "word-pair":
        groups = [(label, words) for r, label in pairs if (words := rd.word_pairs(r))]
        return word_bias_runs(groups, out_dir, stem, title=title) if groups else []
    if kind == "gaussian":
        samples = [g for r, label in pairs if (g := rd.gaussian_sample(r, label)) is not None]
        return gaussian_panels(samples, out_dir, stem, title=title) if samples else []
    return _overlay_curves(runs, labels, out_dir, stem, title)


def _check_same_experiment(results: Sequence[RunResults]) -> None:
    if not results:
        raise ValueError("no runs given: nothing to overlay")
    names = sorted({(r.run.experiment, r.experiment.kind) for r in results})
    if len(names) > 1:
        shown = ", ".join(name for name, _ in names)
        raise ValueError(f"cannot overlay runs of different experiments: {shown}")


def _labels(runs: Sequence[RunResults]) -> list[str]:
    """Model names; D added when it differs between runs, the run id when names still clash."""
    labels = [r.run.model for r in runs]
    if len({r.experiment.d for r in runs}) > 1:
        labels = [f"{label} · D = {r.experiment.d}" for label, r in zip(labels, runs, strict=True)]
    clashes = Counter(labels)
    return [
        f"{label} ({r.run.run_id})" if clashes[label] > 1 else label
        for label, r in zip(labels, runs, strict=True)
    ]


def _overlay_curves(
    runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str, title: str
) -> list[Path]:
    """r(x) of each run on one axes (flip, game), each S in the legend."""
    series = [s for r, label in zip(runs, labels, strict=True) if (s := run_series(r, label))]
    if not series:
        return []
    xlabel, ylabel = P_LABEL, R_LABEL
    if runs[0].experiment.kind == "game":
        xlabel, ylabel = game_axis_labels(runs[0].experiment.first, rd.second_option(runs[0]))
    return response_curves(series, out_dir, stem, title=title, xlabel=xlabel, ylabel=ylabel)


def _overlay_sequences(
    runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str, title: str
) -> list[Path]:
    """Mean(r) of each run on one axes, S_j / running S one line per run, histograms per run."""
    series: list[Series] = []
    s_curves = []
    hists = []
    for r, label in zip(runs, labels, strict=True):
        pos = rd.positions(r)
        if pos is None:
            continue
        series.append(rd.mean_series(pos, label))
        if (s_curve := rd.position_s(pos, label)) is not None:
            s_curves.append(s_curve)
        if by_p := rd.count_samples(r, label):
            hists.append(by_p)
    if not series:
        return []
    paths = response_curves(series, out_dir, stem, title=title, ylabel=MEAN_LABEL)
    if s_curves:
        paths += position_s_curves(s_curves, out_dir, f"{stem}_position_s", title=title)
    if hists:
        paths += _overlay_histograms(hists, out_dir, f"{stem}_count_histograms", title)
    return paths


def _overlay_histograms(
    hists: Sequence[dict[float, CountSample]], out_dir: Path, stem: str, title: str
) -> list[Path]:
    """A row per p that every run has, a column per run; run by run when they share no p."""
    limit = max(2, 6 // len(hists))  # at least the paper's p = 15 % and 45 %
    shared = set.intersection(*(set(h) for h in hists))
    ncols = len(hists) if len(hists) <= 4 else 3
    if shared:
        samples = [h[p] for p in rd.pick_p(shared, limit) for h in hists]
    else:
        samples = [h[p] for h in hists for p in rd.pick_p(h, limit)]
        ncols = min(limit, 3)
    return count_histograms(samples, out_dir, stem, title=title, ncols=ncols)
