"""Response-curve kinds: the single coin flip and the three games (paper Figs. 1 and 6).

Both read r(x), the rate of each condition's `first` answer against the requested x, and its
step-likeness S. A game's x is the optimal mixed strategy's P(first option); it adds the
benchmark's direction score and the reasoning–execution gap (docs/experiments.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flipbench.analysis import (
    GAME_PARTS,
    Analysis,
    ConditionData,
    benchmark_intervals,
    cells,
    estimate,
    estimate_text,
    number_text,
)
from flipbench.curves import response_curve
from flipbench.kinds.base import ExperimentKind
from flipbench.metric_models import CurveMetrics, GameMetrics, ReasoningGap, StatedCondition
from flipbench.metrics import rate_summary
from flipbench.scoring import BenchmarkParts
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.results import RunResults


def curve_analysis(data: Sequence[ConditionData]) -> Analysis | None:
    """r(x) of the first answer and S; None with fewer than two usable conditions."""
    x = [d.condition.x for d in data]
    rates, ns = [], []
    for d in data:
        observed, n = d.observed()
        rates.append(observed[d.condition.answers.index(d.condition.first)])
        ns.append(n)
    usable = [i for i, n in enumerate(ns) if n is None or n > 0]
    # An exact run whose condition got no probabilities (its replies were all unreadable) has
    # nothing to show there; the others are still exact.
    exact = all(ns[i] is None for i in usable)
    if len(usable) < 2:
        return None
    curve = response_curve(
        [x[i] for i in usable],
        [rates[i] for i in usable],
        None if exact else [int(ns[i] or 0) for i in usable],
    )
    s = curve.s
    metrics = CurveMetrics(S=s, S_noise_floor=curve.s_noise_floor, S_corrected=curve.s_corrected)
    return Analysis(
        s.value, (s.low, s.high), metrics, [], None, curve.s_noise_floor, curve.s_corrected,
        curve.s_method,
    )  # fmt: skip


def _no_curve(metrics: type[CurveMetrics] = CurveMetrics) -> Analysis:
    return Analysis(math.nan, (math.nan, math.nan), metrics(S=estimate(math.nan)), [])


class FlipKind(ExperimentKind):
    """A coin that lands "1" p % of the time: r(p) and S."""

    names = ("flip",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        return curve_analysis(data) or _no_curve()


class GameKind(ExperimentKind):
    """A game with a mixed optimum: r(x) and S, the direction score, the reasoning gap."""

    names = ("game",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        result = curve_analysis(data)
        if result is None:
            return _no_curve(GameMetrics)
        name = GAME_PARTS[experiment.name]
        game = benchmark_intervals(
            lambda c: BenchmarkParts(exp4={name: c}), cells(data), ("exp4", name),
            ("direction_raw", "d", "d_trend", "slope"),
        )  # fmt: skip
        lines = [
            f"direction score d = {estimate_text(game['d'])}"
            f" (raw {estimate_text(game['direction_raw'])}); trend variant"
            f" d_trend = {estimate_text(game['d_trend'])}"
            f" (least-squares slope of r on x {estimate_text(game['slope'])}; not scored)"
        ]
        gap = reasoning_execution(data)
        if gap is not None:
            lines.append(
                f"replies that state the optimal mix: {estimate_text(gap.stated_share)}; their"
                f" choices give S = {number_text(gap.S_stated.value)} (acting on what they state"
                " would give ≈ 0)"
            )
        metrics = GameMetrics(
            S=estimate(result.s, result.s_ci), S_noise_floor=result.s_noise_floor,
            S_corrected=result.s_corrected, direction_raw=game["direction_raw"],
            direction_d=game["d"], reasoning_execution=gap, direction_trend=game["d_trend"],
            trend_slope=game["slope"],
        )  # fmt: skip
        return Analysis(
            result.s, result.s_ci, metrics, lines, None, result.s_noise_floor,
            result.s_corrected, result.s_method,
        )  # fmt: skip

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures.figure import response_curve as draw_curve
        from flipbench.figures.panels import game_axis_labels
        from flipbench.figures.run_data import second_option

        xlabel, ylabel = game_axis_labels(results.experiment.first, second_option(results))
        metrics = results.metrics
        d = metrics.direction_d if isinstance(metrics, GameMetrics) else None
        extra = "" if d is None or math.isnan(d.value) else f"direction score d = {d.value:.3f}"
        return draw_curve(results, out_dir, xlabel=xlabel, ylabel=ylabel, extra=extra)

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        from flipbench.figures.figure import overlay_curves
        from flipbench.figures.panels import game_axis_labels
        from flipbench.figures.run_data import second_option

        axes = game_axis_labels(runs[0].experiment.first, second_option(runs[0]))
        return overlay_curves(runs, labels, out_dir, stem, axes=axes)


_PERCENT = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)\s*%")


def states_optimum(text: str, x: float, tolerance: float = 0.01) -> bool:
    """Whether a reply states the optimal mix: a percentage within one point of the optimal
    probability of either option (x or 1 − x), e.g. "map it to A with probability 40%"."""
    for match in _PERCENT.finditer(text):
        value = float(match.group(1)) / 100
        if min(abs(value - x), abs(value - (1 - x))) <= tolerance:
            return True
    return False


def reasoning_execution(data: Sequence[ConditionData]) -> ReasoningGap | None:
    """The reasoning–execution gap (docs/experiments.md): among replies whose reasoning states the
    optimal mix, how often they still act like the argmax. None without reply texts (exact)."""
    if not any(t.strip() for d in data for t in d.texts):
        return None
    rows, xs, ks, ns = [], [], [], []
    stated_total = valid_total = 0
    for d in data:
        flags = [states_optimum(t, d.condition.x) for t in d.texts]
        chosen = [a == d.condition.first for a, f in zip(d.answers, flags, strict=True) if f]
        n, k = len(chosen), sum(chosen)
        stated_total += n
        valid_total += len(flags)
        rate, low, high = rate_summary(k, n)
        row = StatedCondition(x=d.condition.x, n_valid=len(flags), n_stated=n,
                              rate_first_when_stated=estimate(rate, (low, high)))  # fmt: skip
        rows.append(row)
        if n:
            xs.append(d.condition.x)
            ks.append(k)
            ns.append(n)
    share, low, high = rate_summary(stated_total, valid_total)
    s_stated = response_curve(xs, ks, ns).s if len(xs) >= 2 else None
    return ReasoningGap(
        stated_share=estimate(share, (low, high)),
        S_stated=estimate(math.nan) if s_stated is None else s_stated,
        per_condition=rows,
        rule="a percentage within 1 point of the optimal P of either option",
    )


FLIP = FlipKind()
GAME = GameKind()
