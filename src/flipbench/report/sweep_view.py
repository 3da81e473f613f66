"""What the HTML report shows of a sweep: already-formatted rows and inline figures.

The report layer sits below the sweep package (the sweep runs through the API, the report only
reads), so it cannot import the sweep's ranking; `flipbench.sweep.report` fills this view from
the ranking and the regression and the page only prints it. Every text here is model- or
server-written at some remove (model ids from a catalogue, skip reasons from error replies), so
it reaches the page through the same autoescaped, masked template path as a run's replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flipbench.report.sections import FigureImage

__all__ = ["EffectLine", "RankLine", "SweepView", "UnrankedLine"]


@dataclass(frozen=True)
class RankLine:
    """One ranked model, as the table prints it."""

    rank: int
    group: int
    model: str
    run_id: str
    mean: str
    mean_interval: str
    bias: str
    bias_interval: str
    noise: str  # "≈p", "≈next", both or ""
    valid: int
    valid_share: str
    cost: str
    latency: str


@dataclass(frozen=True)
class UnrankedLine:
    """A model without a valid draw, and why."""

    model: str
    state: str
    calls: int
    reason: str


@dataclass(frozen=True)
class EffectLine:
    """One effect of the regression: its posterior mean and interval, and what it means."""

    name: str
    mean: str
    interval: str
    note: str


@dataclass
class SweepView:
    """A sweep's section of the report."""

    sweep_id: str
    anchor: str
    experiment: str
    status: str
    message: str | None
    n: int
    spent: str
    ranked: list[RankLine]
    unranked: list[UnrankedLine]
    figures: list[FigureImage] = field(default_factory=list)
    effects: list[EffectLine] = field(default_factory=list)
    effects_note: str | None = None  # how the regression was fitted, or why it was not
    effect_figures: list[FigureImage] = field(default_factory=list)
