"""Every metric of a run, whatever its experiment: the kind picks it (docs/experiments.md).

The journal gives, per condition, the valid answers (sampled) or the renormalised answer
distribution (exact). From these this module builds the scoring cells shared with the
benchmark (`scoring`), and the per-experiment curves and fits (`curves`, `distfit`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from flipbench.curves import position_curves, response_curve, word_bias
from flipbench.distfit import count_histogram, gaussian_fit, ternary_fit
from flipbench.metrics import rate_summary
from flipbench.scoring import BenchmarkParts, Cell, WordCell, score_benchmark
from flipbench.tasks.definition import Condition, ResolvedExperiment

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
    """The headline S (NaN where an experiment has none), every metric, and lines to print."""

    s: float
    s_ci: tuple[float, float]
    metrics: dict[str, Any]
    lines: list[str]


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


N_BOOT_METRICS = 200  # replicates for the benchmark sub-metrics shown by `show`


def _with_intervals(
    make: Callable[[list[Any]], BenchmarkParts],
    items: Sequence[Cell | WordCell],
    path: Sequence[str],
    keys: Sequence[str],
) -> dict[str, dict[str, float | None]]:
    """Benchmark sub-metrics (direction score, Exp3 areas, biases) with percentile-bootstrap
    intervals: each sampled condition is redrawn from its own shares (exact ones stay fixed)."""

    def metrics(cells_: list[Any]) -> dict[str, Any]:
        found = _part(make(cells_), path[0])
        for step in path[1:]:
            found = found[step]
        return found

    point = metrics(list(items))
    rng = np.random.default_rng(0)
    draws: dict[str, list[float]] = {k: [] for k in keys}
    if any(c.n for c in items):
        for _ in range(N_BOOT_METRICS):
            redrawn = [
                replace(c, probs=rng.multinomial(c.n, c.probs) / c.n) if c.n else c for c in items
            ]
            m = metrics(redrawn)
            for k in keys:
                draws[k].append(math.nan if m[k] is None else float(m[k]))
    out = {}
    for k in keys:
        value = math.nan if point[k] is None else float(point[k])
        finite = [v for v in draws[k] if math.isfinite(v)]
        ci = tuple(np.percentile(finite, [2.5, 97.5])) if finite else None
        out[k] = _e(value, (float(ci[0]), float(ci[1])) if ci else None)
    return out


def _e(value: float, ci: tuple[float, float] | None = None) -> dict[str, float | None]:
    def clean(v: float) -> float | None:
        return v if math.isfinite(v) else None

    lo, hi = ci if ci is not None else (value, value)
    return {"value": clean(value), "ci_low": clean(lo), "ci_high": clean(hi)}


def _num(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def _est(e: dict[str, float | None]) -> str:
    """`0.412 [0.380, 0.450]`, or just the value when the interval is a point."""
    value, lo, hi = e["value"], e["ci_low"], e["ci_high"]
    if lo is None or hi is None or lo == hi:
        return _num(value)
    return f"{_num(value)} [{lo:.3f}, {hi:.3f}]"


def analyse(experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
    """Dispatch on the experiment's kind."""
    kind = experiment.kind
    if kind in ("d-flips", "chained"):
        return _sequences(experiment, data)
    if kind == "ternary":
        return _ternary(data)
    if kind == "gaussian":
        return _gaussian(data)
    if kind == "word-pair":
        return _words(data)
    return _curve(experiment, data)


def _curve(experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
    """Single flip and games: r(x) of the first answer, S, and (games) the direction score."""
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
        return Analysis(math.nan, (math.nan, math.nan), {"S": _e(math.nan)}, [])
    curve = response_curve(
        [x[i] for i in usable],
        [rates[i] for i in usable],
        None if exact else [int(ns[i] or 0) for i in usable],
    )
    s = curve.s
    metrics: dict[str, Any] = {"S": _e(s.value, (s.low, s.high))}
    lines = []
    if experiment.kind == "game":
        name = GAME_PARTS[experiment.name]
        game = _with_intervals(
            lambda c: BenchmarkParts(exp4={name: c}), cells(data), ("exp4", name),
            ("direction_raw", "d"),
        )  # fmt: skip
        metrics.update(direction_raw=game["direction_raw"], direction_d=game["d"])
        lines.append(f"direction score d = {_est(game['d'])} (raw {_est(game['direction_raw'])})")
        gap = reasoning_execution(data)
        if gap is not None:
            metrics["reasoning_execution"] = gap
            share, s_stated = gap["stated_share"], gap["S_stated"]
            lines.append(
                f"replies that state the optimal mix: {_est(share)}; their choices give"
                f" S = {_num(s_stated['value'])} (acting on what they state would give ≈ 0)"
            )
    return Analysis(s.value, (s.low, s.high), metrics, lines)


_PERCENT = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)\s*%")


def states_optimum(text: str, x: float, tolerance: float = 0.01) -> bool:
    """Whether a reply states the optimal mix: a percentage within one point of the optimal
    probability of either option (x or 1 − x), e.g. "map it to A with probability 40%"."""
    for match in _PERCENT.finditer(text):
        value = float(match.group(1)) / 100
        if min(abs(value - x), abs(value - (1 - x))) <= tolerance:
            return True
    return False


def reasoning_execution(data: Sequence[ConditionData]) -> dict[str, Any] | None:
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
        rows.append({"x": d.condition.x, "n_valid": len(flags), "n_stated": n,
                     "rate_first_when_stated": _e(rate, (low, high))})  # fmt: skip
        if n:
            xs.append(d.condition.x)
            ks.append(k)
            ns.append(n)
    share, low, high = rate_summary(stated_total, valid_total)
    s_stated = response_curve(xs, ks, ns).s if len(xs) >= 2 else None
    return {
        "stated_share": _e(share, (low, high)),
        "S_stated": _e(math.nan)
        if s_stated is None
        else _e(s_stated.value, (s_stated.low, s_stated.high)),
        "per_condition": rows,
        "rule": "a percentage within 1 point of the optimal P of either option",
    }


def _sequences(experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
    """D flips per reply (one reply, or a conversation): per position, Mean(r), running S."""
    d = experiment.d
    replies = {c.condition.x: c.replies(d) for c in data}
    curves = position_curves(replies)
    metrics: dict[str, Any] = {"positions": curves.to_dict()}
    s_mean = curves.s_mean
    per_position = ", ".join(f"S{j + 1} {_num(e.value)}" for j, e in enumerate(curves.s_position))
    lines = [
        f"per position: {per_position}" if d <= 10 else f"S1 {_num(curves.s_position[0].value)}"
    ]
    if d >= 10:
        hist = {f"{p:g}": count_histogram(r, p).to_dict() for p, r in replies.items() if len(r)}
        metrics["count_histograms"] = hist
        ratios = ", ".join(f"p={k}: {_num(v['variance_ratio']['value'])}" for k, v in hist.items())
        lines.append(f"variance ratio (observed / binomial): {ratios}")
    return Analysis(s_mean.value, (s_mean.low, s_mean.high), metrics, lines)


def _ternary(data: Sequence[ConditionData]) -> Analysis:
    """r0, r1, r2 per q with KL and TV, and the benchmark's S0, S1, S2 (areas over q)."""
    fits = {}
    for d in data:
        observed, n = d.observed()
        if n == 0:  # nothing valid yet: no rates to fit
            continue
        fits[d.condition.value] = ternary_fit(d.condition.x, observed, exact=n is None).to_dict()
    keys = ("A0", "A1", "A2", "S0", "S1", "S2")
    m = _with_intervals(lambda c: BenchmarkParts(exp3=c), cells(data), ("exp3",), keys)
    lines = [f"S0 {_est(m['S0'])}, S1 {_est(m['S1'])}, S2 {_est(m['S2'])} (benchmark areas)"]
    return Analysis(math.nan, (math.nan, math.nan), {"per_q": fits, "areas": m}, lines)


def _gaussian(data: Sequence[ConditionData]) -> Analysis:
    answers = [a for d in data for a in d.answers]
    values = [v for v in map(_number, answers) if math.isfinite(v)]
    if not values:  # nothing valid yet, or only non-finite numbers: nothing to fit
        fit: dict[str, Any] = {"n": 0, "n_dropped": len(answers)}
        return Analysis(math.nan, (math.nan, math.nan), {"gaussian": fit}, ["no numbers to fit"])
    fit = gaussian_fit(values).to_dict()
    fit["n_dropped"] += len(answers) - len(values)
    lines = [
        f"mean {_num(fit['mean']['value'])}, sd {_num(fit['sd']['value'])} (requested 100, 15);"
        f" KS D = {_num(fit['ks_stat'])}, p = {fit['ks_pvalue']:.2g}"
        if fit.get("ks_pvalue") is not None
        else "no numbers to fit"
    ]
    return Analysis(math.nan, (math.nan, math.nan), {"gaussian": fit}, lines)


def _number(answer: str) -> float:
    """A stored answer as a number; NaN when it is none (a journal holds whatever it holds)."""
    try:
        return float(answer)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _words(data: Sequence[ConditionData]) -> Analysis:
    counts: dict[tuple[str, str], tuple[float, int | None]] = {}
    for d in data:
        if d.condition.x != 0.5:
            continue
        observed, n = d.observed()
        if n != 0:
            counts[(d.condition.group or "", d.order)] = (float(observed[0]), n)
    bias = word_bias(counts).to_dict()
    keys = ("avg_pos_bias", "avg_red_bias", "Score_pos", "Score_sem")
    m = _with_intervals(lambda c: BenchmarkParts(exp5=c), word_cells(data), ("exp5",), keys)
    lines = [
        f"position bias: mean |r_first − 0.5| = {_est(m['avg_pos_bias'])};"
        f" semantic (red word) bias: mean = {_est(m['avg_red_bias'])}"
    ]
    return Analysis(math.nan, (math.nan, math.nan), {"words": bias, "bias": m}, lines)


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
