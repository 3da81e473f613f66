"""Poisson insertion (bayesian.md, Exp 5): the rate a model writes, read back from its text.

Each reply is cut at whitespace. A token made only of the condition's character is a
**standalone** insertion (`§§` counts 2); a word is a token holding a letter or digit; a
character glued to anything else (`cat§`, `§,`) is counted apart as *attached* and left out,
as the spec asks (standalone occurrences only). Insertions count only inside a **complete gap**,
between two words: what follows the last word may have been cut at max_tokens. The explicit
variant's first gap is after its first word; a continuation's first gap is the one after the
prefix (unless the reply glues onto the prefix's last word).

The estimate of a condition (and of all replies at one requested λ, pooled over sequences) is
the ratio λ̂ = Σ k_i / Σ g_i over replies i (k insertions in g gaps). Its 95 % interval is the
exact Poisson (Garwood) interval of the total count, made **quasi-Poisson**: when replies vary
more than Poisson (Pearson dispersion φ = Σ (k_i − λ̂ g_i)² / (λ̂ g_i) / (n − 1) above 1), the
count and exposure are divided by φ and the half-widths widened by t_{n−1}/z. A model's
insertions are rarely Poisson (one story full of `§`, the next with none), and a plain Poisson
interval then covers far too little. Measured coverage of the nominal 95 % (2,000 simulated
runs each, replies of 20–120 gaps, `tests/test_bayes_poisson.py` holds a faster version):
Poisson 0.96–0.98; per-reply rates Gamma-distributed with cv 0.5: 0.935–0.95; cv 1: 0.91–0.94
(plain Garwood: 0.18–0.77 there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from flipbench.analysis import Analysis, ConditionData, estimate_text
from flipbench.estimate import Estimate
from flipbench.kinds.base import ExperimentKind
from flipbench.metric_models import KindMetrics
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.results import RunResults

LEVEL = 0.95


@dataclass(frozen=True)
class Counts:
    """One reply: standalone insertions inside complete gaps, those gaps, glued characters."""

    insertions: int
    gaps: int
    attached: int


def count_insertions(text: str, char: str, *, leading_gap: bool) -> Counts:
    """Standalone copies of `char` between words of `text` (see the module's docstring)."""
    if len(char) != 1 or char.isspace() or char.isalnum():
        raise ValueError(f"the inserted character must be one symbol, got {char!r}")
    tokens = text.split()
    glued = leading_gap and bool(text) and not text[0].isspace()
    open_gap = leading_gap and not glued  # a gap is open when a word (or the prefix) ended it
    insertions = gaps = attached = pending = 0
    for i, token in enumerate(tokens):
        if i == 0 and glued:  # the rest of the prefix's last word: its gap follows
            attached += token.count(char)
            open_gap = True
            continue
        if set(token) == {char}:
            pending += len(token)
            continue
        attached += token.count(char)
        if any(c.isalnum() for c in token):
            if open_gap:
                gaps += 1
                insertions += pending
            pending, open_gap = 0, True
    return Counts(insertions, gaps, attached)


def rate_interval(
    insertions: Sequence[int], gaps: Sequence[int], level: float = LEVEL
) -> tuple[Estimate, float]:
    """λ̂ = Σk / Σg with its quasi-Poisson Garwood interval, and the dispersion φ (≥ 1)."""
    from scipy import stats  # here: scipy costs every CLI command ~0.5 s

    k = np.asarray(insertions, dtype=float)
    g = np.asarray(gaps, dtype=float)
    keep = g > 0
    k, g = k[keep], g[keep]
    total, exposure = float(k.sum()), float(g.sum())
    if exposure == 0:
        return Estimate(math.nan, math.nan, math.nan), math.nan
    rate = total / exposure
    n = len(k)
    phi = 1.0
    if n > 1 and total > 0:
        phi = max(1.0, float(np.sum((k - rate * g) ** 2 / (rate * g)) / (n - 1)))
    count, scaled = total / phi, exposure / phi
    alpha = 1 - level
    low = float(stats.chi2.ppf(alpha / 2, 2 * count)) / (2 * scaled) if total > 0 else 0.0
    high = float(stats.chi2.ppf(1 - alpha / 2, 2 * count + 2)) / (2 * scaled)
    if phi > 1:  # φ is itself estimated from n replies: t rather than z
        widen = float(stats.t.ppf(1 - alpha / 2, n - 1) / stats.norm.ppf(1 - alpha / 2))
        low, high = max(0.0, rate - (rate - low) * widen), rate + (high - rate) * widen
    return Estimate(rate, low, high), phi


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PoissonRate(_Model):
    """The rate read from a set of replies (one condition, or every condition at one λ)."""

    requested: float
    char: str
    replies: int
    insertions: int
    gaps: int
    attached: int  # copies glued to words or punctuation: not counted
    rate: Estimate  # λ̂ with its quasi-Poisson interval
    dispersion: float  # Pearson φ over replies (1 = Poisson)
    prefix_rate: float | None = None  # in-context: the prefix's own rate (mean over sequences)


class PoissonMetrics(KindMetrics):
    """Per condition, and per requested λ pooled over its conditions (sequences)."""

    conditions: dict[str, PoissonRate]
    by_rate: dict[str, PoissonRate]


def _rate(
    requested: float, char: str, counts: Sequence[Counts], prefixes: Sequence[float]
) -> PoissonRate:
    rate, phi = rate_interval([c.insertions for c in counts], [c.gaps for c in counts])
    return PoissonRate(
        requested=requested, char=char, replies=len(counts),
        insertions=sum(c.insertions for c in counts), gaps=sum(c.gaps for c in counts),
        attached=sum(c.attached for c in counts), rate=rate, dispersion=phi,
        prefix_rate=float(np.mean(prefixes)) if prefixes else None,
    )  # fmt: skip


def _prefix_rate(fields: dict[str, str]) -> list[float]:
    gaps = int(fields.get("prefix_gaps", "0"))
    return [int(fields["prefix_insertions"]) / gaps] if gaps else []


def _line(name: str, r: PoissonRate) -> str:
    prefix = "" if r.prefix_rate is None else f", prefix {r.prefix_rate:.3f}"
    glued = f"; {r.attached:,} attached, not counted" if r.attached else ""
    return (
        f"{name} ({r.char}): λ̂ {estimate_text(r.rate)}{prefix} from {r.replies} replies"
        f" ({r.insertions:,} insertions in {r.gaps:,} gaps, dispersion {r.dispersion:.2f}{glued})"
    )


class BayesPoissonKind(ExperimentKind):
    names = ("bayes-poisson",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        specs = {s.key: s for s in experiment.specs}
        conditions: dict[str, PoissonRate] = {}
        pooled: dict[tuple[str, str], tuple[list[Counts], list[float]]] = {}
        table = []
        for d in data:
            spec = specs[d.condition.key]
            char, leading = spec.fields["char"], spec.fields.get("leading_gap") == "yes"
            counts = [count_insertions(t, char, leading_gap=leading) for t in d.texts]
            prefixes = _prefix_rate(spec.fields)
            result = _rate(spec.x, char, counts, prefixes)
            table.append((result.rate.value, result.rate.low, result.rate.high))
            if not counts:
                continue
            conditions[d.condition.key] = result
            group = pooled.setdefault((spec.fields["lam"], char), ([], []))
            group[0].extend(counts)
            group[1].extend(prefixes)
        by_rate = {
            f"lambda={lam}" + ("" if len({c for _, c in pooled}) == 1 else f",char={char}"):
                _rate(float(lam), char, counts, prefixes)
            for (lam, char), (counts, prefixes) in pooled.items()
        }  # fmt: skip
        lines = [_line(name, r) for name, r in by_rate.items()]
        metrics = PoissonMetrics(conditions=conditions, by_rate=by_rate)
        return Analysis(math.nan, (math.nan, math.nan), metrics, lines, rates=table)

    def rate_label(self, experiment: ResolvedExperiment) -> str:
        return "λ̂ (insertions per gap)"

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels_bayes_poisson import RatePoint, rate_panel

        metrics = results.metrics
        if not isinstance(metrics, PoissonMetrics) or not metrics.by_rate:
            return []
        pooled = [RatePoint(r.requested, r.rate, r.char, r.prefix_rate)
                  for r in metrics.by_rate.values()]  # fmt: skip
        single = [RatePoint(r.requested, r.rate, r.char, r.prefix_rate)
                  for r in metrics.conditions.values()]  # fmt: skip
        return rate_panel(pooled, single, out_dir, title=run_title(results))

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        return []  # one run's figure only (several models: compare their `show` lines)


BAYES_POISSON = BayesPoissonKind()
