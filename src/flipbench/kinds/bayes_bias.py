"""The Bayesian battery's priors and needles: the categorical fits, plus what the paper reads.

The categorical kind already fits every condition against its `target` (per-answer rates, TV,
KL, and S when every condition requests x for its first answer). Priors and needles need three
readings more, which is why this kind exists:

* the **spread over paraphrases**: conditions that share a `group` (the stems of a prior) ask
  the same thing in different words; the paper reports the mean ± sd of P(first) over them
  (sd with ddof = 1, a description of the stems, not an interval);
* the **mass on the requested support**: "always even" asks for no odd number, so the share of
  answers the target allows (P(even) there) is the number to read, not P("2");
* the **needle position × context length** grid: conditions keyed `L=<words> d=<depth>` are
  laid out as a depth × length table of |P(first) − x| and TV, the heatmap's cells.

S is computed (as the categorical kind does) only when conditions request at least two
different x for their first answer: the needle curves, not a prior's stems.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from flipbench.analysis import Analysis, ConditionData, estimate, estimate_text, number_text
from flipbench.kinds.categorical import CategoricalKind, condition_fits, tracks_first, with_curve
from flipbench.kinds.curve import curve_analysis
from flipbench.metric_models import CategoricalMetrics
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.results import RunResults

_DEPTH_KEY = re.compile(r"^L=(\d+) d=([0-9.]+)(?: b=([0-9.]+))?$")
#: At most this many conditions get a line each in `show`.
_LINES = 8
#: Answer-share panels (one per condition) are drawn for at most this many conditions.
_SHARE_PANELS = 12


class Spread(BaseModel):
    """P(first) over the conditions of one group (a prior's paraphrase stems)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: str
    n: int
    mean: float
    sd: float
    low: float  # the smallest P(first) over the group
    high: float
    target: float


class DepthCell(BaseModel):
    """One cell of the needle position × context length grid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    condition: str
    length: int
    depth: float
    requested: float
    rate: float  # P(first)
    error: float  # |P(first) − requested|
    tv: float


class BayesBiasMetrics(CategoricalMetrics):
    """The categorical fits, and per condition P(first) and the mass on the target's support;
    the spread per group of at least two conditions; the depth × length cells."""

    first_rate: dict[str, float]
    support_mass: dict[str, float]
    spread: dict[str, Spread] = Field(default_factory=dict)
    depth_cells: list[DepthCell] | None = None


def first_share(d: ConditionData) -> float:
    """P(first) of one condition (NaN with nothing read yet)."""
    probs, n = d.distribution()
    if n == 0:
        return math.nan
    return float(probs[d.condition.answers.index(d.condition.first)])


def support_share(d: ConditionData) -> float:
    """The share of answers the condition's target allows (its support), NaN unread."""
    probs, n = d.distribution()
    if n == 0 or d.condition.target is None:
        return math.nan
    allowed = [d.condition.target.get(a, 0.0) > 0 for a in d.condition.answers]
    return float(np.sum(probs[allowed]))


def spreads(data: Sequence[ConditionData], rates: dict[str, float]) -> dict[str, Spread]:
    """Mean ± sd of P(first) per group of at least two read conditions."""
    groups: dict[str, list[ConditionData]] = {}
    for d in data:
        if d.condition.group is not None and math.isfinite(rates[d.condition.key]):
            groups.setdefault(d.condition.group, []).append(d)
    out = {}
    for name, members in groups.items():
        if len(members) < 2:
            continue
        values = np.array([rates[d.condition.key] for d in members])
        first = members[0].condition
        out[name] = Spread(
            answer=first.first, n=len(values), mean=float(values.mean()),
            sd=float(values.std(ddof=1)), low=float(values.min()), high=float(values.max()),
            target=float((first.target or {}).get(first.first, math.nan)),
        )  # fmt: skip
    return out


def depth_cells(
    data: Sequence[ConditionData], rates: dict[str, float], tvs: dict[str, float]
) -> list[DepthCell] | None:
    """The conditions keyed `L=… d=…` as heatmap cells (None when the grid is not one)."""
    cells = []
    for d in data:
        found = _DEPTH_KEY.match(d.condition.key)
        if found is None:
            return None
        key = d.condition.key
        if key not in tvs:
            continue
        cells.append(
            DepthCell(
                condition=key,
                length=int(found[1]),
                depth=float(found[2]),
                requested=d.condition.x,
                rate=rates[key],
                error=abs(rates[key] - d.condition.x),
                tv=tvs[key],
            )
        )
    return cells


def _spread_line(name: str, s: Spread) -> str:
    return (
        f'{name}: P("{s.answer}") over {s.n} stems: mean {s.mean:.3f} ± sd {s.sd:.3f}'
        f" (min {s.low:.3f}, max {s.high:.3f}; target {s.target:.3f})"
    )


def _condition_line(d: ConditionData, rate: float, support: float, tv: str) -> str:
    c = d.condition
    line = f'{c.key}: P("{c.first}") {number_text(rate)}'
    target = c.target or {}
    if any(target.get(a, 0.0) == 0 for a in c.answers):
        line += f", on the requested support {number_text(support)}"
    return f"{line}, TV {tv}"


def _depth_lines(cells: list[DepthCell]) -> list[str]:
    lengths = sorted({c.length for c in cells})
    parts = []
    for n in lengths:
        errors = [c.error for c in cells if c.length == n]
        parts.append(f"L={n} {np.mean(errors):.3f}")
    return [f"mean |P(heads) − b| by filler length (words): {', '.join(parts)}"]


class BayesBiasKind(CategoricalKind):
    names = ("bayes-bias",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        fits = condition_fits(data)
        tvs = {d.condition.key: fits[d.condition.value].tv.value
               for d in data if d.condition.value in fits}  # fmt: skip
        rates = {d.condition.key: first_share(d) for d in data}
        support = {d.condition.key: support_share(d) for d in data}
        spread = spreads(data, rates)
        cells = depth_cells(data, rates, tvs)
        lines = [_spread_line(name, s) for name, s in spread.items()]
        if cells:
            lines += _depth_lines(cells)
        shown = [d for d in data if d.condition.key in tvs]
        for d in shown[:_LINES]:
            tv = estimate_text(fits[d.condition.value].tv)
            lines.append(_condition_line(d, rates[d.condition.key], support[d.condition.key], tv))
        if len(shown) > _LINES:
            values = list(tvs.values())
            lines.append(f"… {len(shown) - _LINES} more conditions; mean TV"
                         f" {number_text(float(np.mean(values)))}, largest"
                         f" {number_text(max(values))}")  # fmt: skip
        curve = curve_analysis(data) if tracks_first(data) else None
        metrics = BayesBiasMetrics(
            per_condition=fits, mean_tv=float(np.mean(list(tvs.values()))) if tvs else None,
            S=estimate(curve.s, curve.s_ci) if curve is not None else None,
            first_rate=rates, support_mass=support, spread=spread, depth_cells=cells,
        )  # fmt: skip
        return with_curve(curve, metrics, lines)

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures import panels_bayes_bias as panels
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels_categorical import answer_share_panels
        from flipbench.kinds.categorical import answer_shares

        metrics = results.metrics
        if not isinstance(metrics, BayesBiasMetrics):
            return super().figures(results, out_dir)
        title = run_title(results)
        paths: list[Path] = []
        conditions = results.experiment.conditions()
        if metrics.depth_cells:
            cells = [panels.Cell(c.length, c.depth, c.requested, c.error)
                     for c in metrics.depth_cells]  # fmt: skip
            paths += panels.depth_heatmap(cells, out_dir, title=title)
        for name, spread in metrics.spread.items():
            members = [c for c in conditions if c.group == name]
            labels = [c.raw_prompt or c.prefill or c.key for c in members]
            values = [metrics.first_rate.get(c.key, math.nan) for c in members]
            shown = panels.Spread(spread.answer, spread.mean, spread.sd, spread.target)
            paths += panels.prior_spread(labels, values, shown, out_dir, title=title,
                                         stem=f"prior_spread_{name}")  # fmt: skip
        if metrics.S is not None and not metrics.depth_cells:
            xs = [c.x for c in conditions]
            ys = [metrics.first_rate.get(c.key, math.nan) for c in conditions]
            paths += panels.needle_curve(xs, ys, results.experiment.first, out_dir, title=title)
        if len(conditions) <= _SHARE_PANELS and (shares := answer_shares(results)):
            paths += answer_share_panels([shares], out_dir, title=title)
        return paths


BAYES_BIAS = BayesBiasKind()
