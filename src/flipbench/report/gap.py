"""The knowledge–sampling gap: what a model says the probability is, what its tokens say,
and what it samples — per condition, side by side.

A `verbalized` run (`--intervention verbalized`) journals with every reply the distribution
the model stated before answering (`meta.stated`), and its answers are ordinary samples; an
exact run of the same experiment, model and grid adds the token probability of each answer.
The gap is then read off one figure: a model that knows the distribution states it on the
diagonal, and a model that cannot act on it samples a step.

Intervals: the stated mean gets a t interval over the replies that stated a valid
distribution (stated values vary reply to reply, so the spread is the data's own); the
sampled rate its Wilson interval (from the run's results); the exact probability is a point.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from pydantic import BaseModel
from scipy import stats

from flipbench.errors import FlipbenchError
from flipbench.results import compute_results
from flipbench.store import Journal

__all__ = ["GapCondition", "KnowledgeGap", "gap_figure", "knowledge_gap"]


class GapCondition(BaseModel):
    """One condition: requested p of the first answer, and the three readings of it."""

    condition: str
    p: float
    stated: float | None  # mean stated P(first answer) over the replies that stated one
    stated_low: float | None
    stated_high: float | None
    stated_n: int
    sampled: float | None
    sampled_low: float | None
    sampled_high: float | None
    sampled_n: int
    exact: float | None = None


class KnowledgeGap(BaseModel):
    """A run's gap table (`flipbench gap RUN --format json` writes this)."""

    run_id: str
    model: str
    experiment: str
    exact_run_id: str | None
    first: str
    conditions: list[GapCondition]
    stated_error: float | None  # mean |stated − p|: what the model knows
    sampled_error: float | None  # mean |sampled − p|: what it does
    gap: float | None  # mean |sampled − stated|: the knowledge–sampling gap


def _t_interval(values: list[float]) -> tuple[float | None, float | None]:
    if len(values) < 2:
        return None, None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return max(0.0, mean - half), min(1.0, mean + half)


def _mean_abs(pairs: list[tuple[float | None, float | None]]) -> float | None:
    known = [abs(a - b) for a, b in pairs if a is not None and b is not None]
    return statistics.fmean(known) if known else None


def knowledge_gap(journal: Journal, run_id: str, exact_run_id: str | None = None) -> KnowledgeGap:
    """The gap table of a verbalized run (and, with `exact_run_id`, its exact probabilities)."""
    results = compute_results(journal, run_id)
    if results.run.config.get("intervention") != "verbalized":
        raise FlipbenchError(
            f"run {run_id} was not asked to state its probabilities: run the experiment with"
            " --intervention verbalized"
        )
    stated: dict[str, list[float]] = {}
    conditions = {c.key: c for c in results.experiment.conditions()}
    for row in journal.samples(run_id, ("condition", "meta_json")):
        said = json.loads(row["meta_json"] or "{}").get("stated")
        condition = conditions.get(row["condition"])
        if isinstance(said, dict) and condition is not None:
            value = said.get(condition.first)
            if isinstance(value, int | float) and 0 <= value <= 1:
                stated.setdefault(row["condition"], []).append(float(value))
    exact: dict[str, float] = {}
    if exact_run_id is not None:
        other = compute_results(journal, exact_run_id)
        if other.run.mode != "exact" or other.experiment.name != results.experiment.name:
            raise FlipbenchError(
                f"--exact {exact_run_id} must be an exact-mode run of {results.experiment.name}"
            )
        exact = {c.condition: c.rate for c in other.conditions if not math.isnan(c.rate)}
    rows = []
    for c in results.conditions:
        values = stated.get(c.condition, [])
        low, high = _t_interval(values)
        rows.append(GapCondition(
            condition=c.condition, p=c.p, stated=statistics.fmean(values) if values else None,
            stated_low=low, stated_high=high, stated_n=len(values),
            sampled=None if c.n_valid == 0 else c.rate,
            sampled_low=None if c.n_valid == 0 else c.ci_low,
            sampled_high=None if c.n_valid == 0 else c.ci_high,
            sampled_n=c.n_valid, exact=exact.get(c.condition),
        ))  # fmt: skip
    first = results.experiment.first or (rows and conditions[rows[0].condition].first) or ""
    return KnowledgeGap(
        run_id=run_id, model=results.run.model, experiment=results.experiment.name,
        exact_run_id=exact_run_id, first=str(first), conditions=rows,
        stated_error=_mean_abs([(r.stated, r.p) for r in rows]),
        sampled_error=_mean_abs([(r.sampled, r.p) for r in rows]),
        gap=_mean_abs([(r.sampled, r.stated) for r in rows]),
    )  # fmt: skip


def gap_figure(gap: KnowledgeGap, out_dir: Path, stem: str = "knowledge-gap") -> list[Path]:
    """Stated, sampled (and exact) P(first answer) against the requested p, with the diagonal."""
    import matplotlib.pyplot as plt

    from flipbench.figures.common import save, styled

    rows = sorted(gap.conditions, key=lambda r: r.p)
    if not any(r.stated is not None or r.sampled is not None for r in rows):
        return []
    with styled():
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8, label="requested")
        series = {
            "stated": [(r.p, r.stated, r.stated_low, r.stated_high) for r in rows],
            "sampled": [(r.p, r.sampled, r.sampled_low, r.sampled_high) for r in rows],
        }
        for (name, points), style in zip(series.items(), ("o-", "s-"), strict=True):
            pts = [(x, y, y if lo is None else lo, y if hi is None else hi)
                   for x, y, lo, hi in points if y is not None]  # fmt: skip
            if pts:
                ax.errorbar(
                    [x for x, *_ in pts], [y for _, y, _, _ in pts],
                    yerr=[[y - lo for _, y, lo, _ in pts], [hi - y for _, y, _, hi in pts]],
                    fmt=style, markersize=3.5, capsize=1.5, linewidth=1, label=name,
                )  # fmt: skip
        exact = [(r.p, r.exact) for r in rows if r.exact is not None]
        if exact:
            ax.plot([x for x, _ in exact], [y for _, y in exact], "^-", markersize=3.5,
                    linewidth=1, label="token probability (exact)")  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f'requested P("{gap.first}")')
        ax.set_ylabel(f'P("{gap.first}")')
        ax.set_title(f"{gap.model}: what it states vs what it samples", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        return save(fig, out_dir, stem)
