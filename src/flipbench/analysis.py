"""What every experiment kind analyses, and the pieces the kinds share (docs/experiments.md).

The journal gives, per condition, the valid answers (sampled) or the renormalised answer
distribution (exact): a `ConditionData`. A kind (`flipbench.kinds`) turns these into an
`Analysis`; the scoring cells built here are shared with the benchmark (`scoring`), so that
a kind's sub-metrics and the benchmark's parts are one computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flipbench.estimate import Estimate
from flipbench.metric_models import KindMetrics
from flipbench.scoring import BenchmarkParts, Cell, WordCell, bootstrap_metrics, score_benchmark
from flipbench.tasks.definition import Condition

#: The benchmark part (and game) each experiment feeds (docs/benchmark.md).
GAME_PARTS = {"bioinformatics": "bioinformatics", "matching-pennies": "matching_pennies",
              "business": "business"}  # fmt: skip


@dataclass
class ConditionData:
    """What the journal holds for one condition, ready to analyse."""

    condition: Condition
    answers: list[str] = field(default_factory=list)  # valid sampled answers
    texts: list[str] = field(default_factory=list)  # their reply texts (games: the reasoning)
    probs: dict[str, float] | None = None  # exact, renormalised over the answers
    coverage: float | None = None  # exact: the answers' mass before renormalising

    @property
    def exact(self) -> bool:
        return self.probs is not None

    def observed(self) -> tuple[np.ndarray, int | None]:
        """Counts of this condition's answers (in answer order) and n; when exact, the
        probabilities and None — what the fits in `distfit`/`curves` take."""
        space = self.condition.answers
        if self.probs is not None:
            return np.array([self.probs.get(a, 0.0) for a in space], dtype=float), None
        counts = np.array([sum(x == a for x in self.answers) for a in space], dtype=float)
        return counts, len(self.answers)

    def distribution(self) -> tuple[np.ndarray, int | None]:
        """Shares of this condition's answers (in answer order) and n (None when exact)."""
        values, n = self.observed()
        if n is None:
            return values, None
        return (values / n if n else np.full(len(values), 1 / len(values))), n

    @property
    def order(self) -> str:
        """Word pairs: "forward" (red word listed first) or "reverse"."""
        return "forward" if self.condition.value.startswith("forward") else "reverse"

    def replies(self, d: int) -> np.ndarray:
        """Sequence answers ("1 0 1") as an (n, D) 0/1 array; a stored answer that is not D
        flips (only a journal written by something else holds one) is left out."""
        split = (a.split() for a in self.answers)
        rows = [[int(t) for t in r] for r in split if len(r) == d and set(r) <= {"0", "1"}]
        return np.array(rows, dtype=int).reshape(len(rows), d)


@dataclass
class Analysis:
    """The headline S (NaN where an experiment has none), every metric, and lines to print.

    `rates`, when given, is each condition's (rate, low, high) for the table in grid order,
    for kinds whose rate is not the share of one answer (sequences show Mean(r)). Beside S:
    its noise floor (the S a perfectly calibrated model is expected to score at this grid and
    n; 0 when exact), its noise-corrected value and how its interval was made.
    """

    s: float
    s_ci: tuple[float, float]
    metrics: KindMetrics
    lines: list[str]
    rates: list[tuple[float, float, float]] | None = None
    s_noise_floor: float = math.nan
    s_corrected: float = math.nan
    s_method: str = ""


def cells(data: Sequence[ConditionData]) -> list[Cell]:
    """Scoring cells of single-answer conditions (categories in each condition's answer order)."""
    out = []
    for d in data:
        probs, n = d.distribution()
        out.append(Cell(d.condition.x, probs, n))
    return out


def flip_cells(data: Sequence[ConditionData]) -> list[Cell]:
    """Coin cells with categories ("0", "1") whatever order the answer space lists them in."""
    out = []
    for d in data:
        probs, n = d.distribution()
        share = dict(zip(d.condition.answers, probs, strict=True))
        out.append(Cell(d.condition.x, np.array([share["0"], share["1"]]), n))
    return out


def pair_cells(data: Sequence[ConditionData]) -> list[Cell]:
    """D = 2 cells over the four replies 00, 01, 10, 11 (index = 2·first + second)."""
    out = []
    for d in data:
        replies = d.replies(2)
        n = len(replies)
        counts = np.bincount(2 * replies[:, 0] + replies[:, 1], minlength=4) if n else None
        probs = counts / n if counts is not None else np.full(4, 0.25)
        out.append(Cell(d.condition.x, probs, n))
    return out


def word_cells(data: Sequence[ConditionData]) -> list[WordCell]:
    out = []
    for d in data:
        if d.condition.x != 0.5:
            continue  # the paper's extra p = 49 conditions are shown, not scored
        probs, n = d.distribution()
        out.append(WordCell(d.condition.group or "", d.order, probs, n))  # type: ignore[arg-type]
    return out


def _part(parts: BenchmarkParts, name: str) -> dict[str, Any]:
    """One benchmark part's metrics, as plain JSON (NaN as None)."""
    scored: Any = score_benchmark(parts).to_dict()
    return dict(scored["parts"][name]["metrics"])


N_BOOT_METRICS = 1000  # replicates for the benchmark sub-metrics shown by `show`


def benchmark_intervals(
    make: Callable[[list[Any]], BenchmarkParts],
    items: Sequence[Cell | WordCell],
    path: Sequence[str],
    keys: Sequence[str],
) -> dict[str, Estimate]:
    """Benchmark sub-metrics (direction score, Exp3 areas, biases) with the benchmark's own
    vectorised bootstrap (`scoring.bootstrap_metrics`, seed 0): each sampled condition is
    redrawn from its own shares and from the shares nearest its target, exact ones stay
    fixed; deviations from the target get the hull of the bias-aware and percentile
    intervals, d_trend and a pair's rates the percentile one, the slope a Wald interval, and
    d (and the red bias) reach their bound when a test does not reject it (docs/benchmark.md)."""
    parts = make(list(items))
    point: Any = _part(parts, path[0])
    ci: Any = bootstrap_metrics(parts, n_boot=N_BOOT_METRICS, seed=0)[path[0]]
    for step in path[1:]:
        point, ci = point[step], ci[step]
    out = {}
    for k in keys:
        value = math.nan if point[k] is None else float(point[k])
        low, high = ci[k]
        out[k] = estimate(value, (float(low), float(high)))
    return out


def estimate(value: float, ci: tuple[float, float] | None = None) -> Estimate:
    """A value with its interval (a point when there is none)."""
    lo, hi = ci if ci is not None else (value, value)
    return Estimate(float(value), float(lo), float(hi))


def number_text(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def estimate_text(e: Estimate) -> str:
    """`0.412 [0.380, 0.450]`, or just the value when the interval is a point or undefined."""
    if not (math.isfinite(e.low) and math.isfinite(e.high)) or e.low == e.high:
        return number_text(e.value)
    return f"{number_text(e.value)} [{e.low:.3f}, {e.high:.3f}]"


def mean_first_rate(data: ConditionData, d: int) -> float:
    """Mean(r) of a sequence condition: the share of "1" over all positions."""
    replies = data.replies(d)
    return float(replies.mean()) if replies.size else math.nan


def first_rates(data: Mapping[str, ConditionData]) -> dict[str, float]:
    """r of each condition's first answer (for tables), NaN when nothing valid yet."""
    out = {}
    for key, d in data.items():
        probs, n = d.distribution()
        first = d.condition.answers.index(d.condition.first) if d.condition.answers else None
        out[key] = math.nan if first is None or n == 0 else float(probs[first])
    return out
