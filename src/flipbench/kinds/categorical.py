"""Draws from a requested distribution over a set of answers: a die, a deck, a prior.

The generic kind reads each condition's `target` (the requested share of every answer), so a
new experiment of this shape needs no code here: per-answer rates with Wilson intervals
(points when exact), total variation and KL against the request with bootstrap intervals, a
chi-square goodness-of-fit test (sampled runs), and, when every condition requests x for its
`first` answer, that answer's response curve and S. The ternary deck (paper Fig. 4) is this
kind plus the benchmark's Exp3 areas and its own panel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flipbench.analysis import (
    Analysis,
    ConditionData,
    benchmark_intervals,
    cells,
    estimate,
    estimate_text,
    number_text,
)
from flipbench.distfit import categorical_fit
from flipbench.kinds.base import ExperimentKind
from flipbench.kinds.curve import curve_analysis
from flipbench.metric_models import CategoricalMetrics, ConditionFit, KindMetrics, TernaryMetrics
from flipbench.scoring import BenchmarkParts
from flipbench.tasks.definition import Condition, ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.figures.panels_categorical import AnswerShares
    from flipbench.results import RunResults

#: At most this many conditions get a line each in `show`; more are summarised.
_LINES = 8


def requested(condition: Condition) -> np.ndarray:
    """The requested shares in the condition's answer order (0 where the target is silent)."""
    target = condition.target or {}
    return np.array([float(target.get(a, 0.0)) for a in condition.answers], dtype=float)


def condition_fits(data: Sequence[ConditionData]) -> dict[str, ConditionFit]:
    """`categorical_fit` (+ chi-square when sampled) of every condition with an answer, by the
    condition's grid value."""
    fits: dict[str, ConditionFit] = {}
    for d in data:
        observed, n = d.observed()
        if n == 0 or d.condition.target is None:
            continue
        want = requested(d.condition)
        fit = categorical_fit(observed, want, exact=n is None)
        fits[d.condition.value] = ConditionFit.of(fit, list(d.condition.answers))
    return fits


def _fit_line(name: str, fit: ConditionFit) -> str:
    kl_text = "inf" if fit.kl_infinite else estimate_text(fit.kl)
    line = f"{name}: TV {estimate_text(fit.tv)}, KL {kl_text}"
    chi = fit.chi_square
    if chi is not None:
        stat = "inf" if math.isinf(chi.stat) else f"{chi.stat:.1f}"
        line += f", χ²({chi.df}) = {stat}, p = {chi.p_value:.2g}"
    return line


def tracks_first(data: Sequence[ConditionData]) -> bool:
    """Every condition requests x for its first answer, over at least two different x: r(x)
    has the diagonal as target."""
    return len({d.condition.x for d in data}) >= 2 and all(
        d.condition.target is not None
        and abs(d.condition.target.get(d.condition.first, math.nan) - d.condition.x) < 1e-9
        for d in data
    )


def with_curve(curve: Analysis | None, metrics: KindMetrics, lines: list[str]) -> Analysis:
    """The kind's analysis: S (with its floor and corrected value) from the first answer's
    curve where there is one, else NaN."""
    if curve is None:
        return Analysis(math.nan, (math.nan, math.nan), metrics, lines)
    return Analysis(
        curve.s, curve.s_ci, metrics, lines, None, curve.s_noise_floor, curve.s_corrected,
        curve.s_method,
    )  # fmt: skip


class CategoricalKind(ExperimentKind):
    names = ("categorical",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        fits = condition_fits(data)
        tvs = [f.tv.value for f in fits.values()]
        names = {d.condition.value: d.condition.key for d in data}
        shown = list(fits.items())
        lines = [_fit_line(names[v], f) for v, f in shown[:_LINES]]
        if len(shown) > _LINES:
            lines.append(
                f"… {len(shown) - _LINES} more conditions;"
                f" mean TV {number_text(float(np.mean(tvs)))},"
                f" largest {number_text(max(tvs))}"
            )
        curve = curve_analysis(data) if tracks_first(data) else None
        metrics = CategoricalMetrics(
            per_condition=fits,
            mean_tv=float(np.mean(tvs)) if tvs else None,
            S=estimate(curve.s, curve.s_ci) if curve is not None else None,
        )
        return with_curve(curve, metrics, lines)

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures.figure import response_curve, run_title
        from flipbench.figures.panels_categorical import answer_share_panels

        shares = answer_shares(results)
        paths = answer_share_panels([shares], out_dir, title=run_title(results)) if shares else []
        if not math.isnan(results.s):
            paths += response_curve(results, out_dir)
        return paths

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        from flipbench.figures.figure import overlay_curves
        from flipbench.figures.panels_categorical import answer_share_panels

        shares = [
            s for r, label in zip(runs, labels, strict=True) if (s := answer_shares(r, label))
        ]
        title = runs[0].run.experiment
        try:
            paths = answer_share_panels(shares, out_dir, stem, title=title) if shares else []
        except ValueError:  # the runs share no condition
            paths = []
        if any(not math.isnan(r.s) for r in runs):
            paths += overlay_curves(runs, labels, out_dir, f"{stem}_response_curve")
        return paths


def answer_shares(results: RunResults, label: str = "") -> list[AnswerShares]:
    """Each condition's observed shares against the request, from the run's fits."""
    from flipbench.figures.panels_categorical import AnswerShares

    metrics = results.metrics
    fits: dict[str, ConditionFit] = {}
    if isinstance(metrics, CategoricalMetrics):
        fits = metrics.per_condition
    elif isinstance(metrics, TernaryMetrics):
        fits = metrics.per_q
    out = []
    for condition in results.experiment.conditions():
        fit = fits.get(condition.value)
        if fit is None:
            continue
        arr = np.array([(e.value, e.low, e.high) for e in fit.rates], dtype=float)
        sampled = fit.n is not None
        lo, hi = (arr[:, 1], arr[:, 2]) if sampled else (None, None)
        shares = AnswerShares(condition.key, condition.answers, requested(condition), arr[:, 0],
                              lo, hi, label)  # fmt: skip
        out.append(shares)
    return out


class TernaryKind(CategoricalKind):
    """The three-way deck: the categorical fits per q, and the benchmark's Exp3 areas."""

    names = ("ternary",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        fits = condition_fits(data)
        keys = ("A0", "A1", "A2", "S0", "S1", "S2")
        m = benchmark_intervals(lambda c: BenchmarkParts(exp3=c), cells(data), ("exp3",), keys)
        lines = [
            f"S0 {estimate_text(m['S0'])}, S1 {estimate_text(m['S1'])},"
            f" S2 {estimate_text(m['S2'])} (benchmark areas)"
        ]
        metrics = TernaryMetrics(per_q=fits, areas=m)
        return Analysis(math.nan, (math.nan, math.nan), metrics, lines)

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels import ternary_panels

        rates = rd.ternary_rates(results)
        return (
            ternary_panels([rates], out_dir, "ternary", title=run_title(results)) if rates else []
        )

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.panels import ternary_panels

        pairs = zip(runs, labels, strict=True)
        rates = [t for r, label in pairs if (t := rd.ternary_rates(r, label)) is not None]
        title = runs[0].run.experiment
        return ternary_panels(rates, out_dir, stem, title=title) if rates else []


CATEGORICAL = CategoricalKind()
TERNARY = TernaryKind()
