"""D flips per reply, or one flip per turn of a conversation (paper Figs. 2 and 3).

Per position j: r_j(p) and S_j; over positions: Mean(r), its S (the headline) and the running
S; for D >= 10 the histogram of "1"s per reply against Binomial(D, p) with the variance ratio.
The table's rate is Mean(r) with its bootstrap interval, not the rate of one answer. Per p,
the serial tests of the replies (runs, autocorrelation, longest run, bigrams; docs/sequences.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flipbench.analysis import Analysis, ConditionData, number_text
from flipbench.curves import position_curves
from flipbench.distfit import count_histogram
from flipbench.kinds.base import ExperimentKind
from flipbench.metric_models import SequenceMetrics
from flipbench.sequence_compare import Lag1Difference, lag1_difference
from flipbench.sequence_tests import SequenceTests, sequence_tests
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.figures.panels import CountSample
    from flipbench.results import RunResults

#: Replies are resampled whole, and the nearest-calibrated curve carries their noise along
#: (curves.position_curves; docs/experiments.md).
SEQUENCE_S_METHOD = "bias-aware basic bootstrap over replies"
MEAN_LABEL = 'Mean(r): share of "1" over all D positions'


class SequenceKind(ExperimentKind):
    names = ("d-flips", "chained")

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        d = experiment.d
        replies = {c.condition.x: c.replies(d) for c in data}
        curves = position_curves(replies)
        s_mean = curves.s_mean
        per_position = ", ".join(
            f"S{j + 1} {number_text(e.value)}" for j, e in enumerate(curves.s_position)
        )
        first = f"S1 {number_text(curves.s_position[0].value)}"
        lines = [f"per position: {per_position}" if d <= 10 else first]
        hist = None
        if d >= 10:
            hist = {f"{p:g}": count_histogram(r, p) for p, r in replies.items() if len(r)}
            ratios = ", ".join(
                f"p={k}: {number_text(v.variance_ratio.value)}" for k, v in hist.items()
            )
            lines.append(f"variance ratio (observed / binomial): {ratios}")
        serial = serial_tests(replies)
        lines += [f"serial p={k}: {t.summary()}" for k, t in serial.items()]
        metrics = SequenceMetrics(positions=curves, count_histograms=hist, serial=serial)
        rates = [
            (e.value, e.low, e.high) for e in curves.mean_rate
        ]  # the table shows Mean(r) per condition
        return Analysis(
            s_mean.value, (s_mean.low, s_mean.high), metrics, lines, rates,
            curves.s_mean_noise_floor, curves.s_mean_corrected, SEQUENCE_S_METHOD,
        )  # fmt: skip

    def rate_label(self, experiment: ResolvedExperiment) -> str:
        return "Mean(r)"

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels import count_histograms, position_curves, position_s_curves

        pos = rd.positions(results)
        if pos is None:
            return []
        title = run_title(results)
        shown = rd.shown_positions(pos.d)
        intervals = pos.d <= 2  # with more curves the bars would hide them
        paths = position_curves(
            pos.p, pos.r, out_dir, "position_curves", title=title, positions=shown,
            lo=pos.lo if intervals else None, hi=pos.hi if intervals else None,
        )  # fmt: skip
        s_curve = rd.position_s(pos, f"D = {pos.d}")
        if s_curve is not None:
            paths += position_s_curves([s_curve], out_dir, "position_s", title=title)
        paths += _serial_figure(results, out_dir, title)
        by_p = rd.count_samples(results)
        if by_p:
            samples = [by_p[p] for p in rd.pick_p(by_p, 6)]
            paths += count_histograms(samples, out_dir, "count_histograms", title=title)
        return paths

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        """Mean(r) of each run on one axes, S_j / running S one line per run, histograms per
        run."""
        from flipbench.figures import run_data as rd
        from flipbench.figures.panels import PositionS, Series, position_s_curves, response_curves

        title = runs[0].run.experiment
        series: list[Series] = []
        s_curves: list[PositionS] = []
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


def _serial_figure(results: RunResults, out_dir: Path, title: str) -> list[Path]:
    """Autocorrelation by lag with its null band, and runs observed against expected, per p."""
    from flipbench.figures.panels_sequences import serial_tests_figure

    metrics = results.metrics
    if not isinstance(metrics, SequenceMetrics) or not metrics.serial:
        return []
    return serial_tests_figure(metrics.serial, out_dir, "serial_tests", title=title)


def protocol_differences(a: RunResults, b: RunResults) -> dict[str, Lag1Difference]:
    """ρ₁(a) − ρ₁(b) with its bootstrap interval at every p both runs answered: the two
    protocols (D flips in one reply, one flip per turn) compared on one grid
    (docs/sequences.md). Each run's replies are its valid answers of exactly its own D."""

    def by_p(r: RunResults) -> dict[float, np.ndarray]:
        data = (ConditionData(c, answers) for c, answers, _ in r.raw)
        return {d.condition.x: d.replies(r.experiment.d) for d in data}

    replies_a, replies_b = by_p(a), by_p(b)
    shared = sorted(p for p in set(replies_a) & set(replies_b))
    return {f"{p:g}": lag1_difference(replies_a[p], replies_b[p]) for p in shared}


def serial_tests(replies: Mapping[float, np.ndarray]) -> dict[str, SequenceTests]:
    """The serial tests of each p's replies (rows of D flips; docs/sequences.md). Per-position
    rates are left out: `PositionCurves` already holds them, with their S."""
    return {
        f"{p:g}": sequence_tests(r, categories=("0", "1"), per_position=False)
        for p, r in replies.items()
        if len(r)
    }


def _overlay_histograms(
    hists: Sequence[dict[float, CountSample]], out_dir: Path, stem: str, title: str
) -> list[Path]:
    """A row per p that every run has, a column per run; run by run when they share no p."""
    from flipbench.figures import run_data as rd
    from flipbench.figures.panels import count_histograms

    limit = max(2, 6 // len(hists))  # at least the paper's p = 15 % and 45 %
    shared = set.intersection(*(set(h) for h in hists))
    ncols = len(hists) if len(hists) <= 4 else 3
    if shared:
        samples = [h[p] for p in rd.pick_p(shared, limit) for h in hists]
    else:
        samples = [h[p] for h in hists for p in rd.pick_p(h, limit)]
        ncols = min(limit, 3)
    return count_histograms(samples, out_dir, stem, title=title, ncols=ncols)


SEQUENCES = SequenceKind()
