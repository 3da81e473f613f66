"""Answer shares against a requested distribution over any answer set (a die, a deck, priors).

One panel per condition: for each answer the requested share (an outlined bar) and each run's
observed share (filled bars with their interval), so a model that piles onto one face shows at
once. Used by the categorical kind for one run and for several runs of one experiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from flipbench.figures.common import (
    COLORS,
    FloatArray,
    as_array,
    check_interval,
    check_unit,
    error_lengths,
    figure_legend_below,
    panel_grid,
    save,
    styled,
)

REQUESTED = "requested share"


@dataclass(frozen=True, eq=False)
class AnswerShares:
    """One condition of one run: observed shares of each answer, with optional intervals."""

    condition: str
    answers: tuple[str, ...]
    requested: FloatArray
    observed: FloatArray
    lo: FloatArray | None = None
    hi: FloatArray | None = None
    label: str = ""

    def __post_init__(self) -> None:
        requested = as_array(self.requested, "requested shares")
        observed = as_array(self.observed, "observed shares")
        if requested.shape != (len(self.answers),) or observed.shape != requested.shape:
            raise ValueError(
                f"{len(self.answers)} answers need as many requested and observed shares,"
                f" got {requested.size} and {observed.size}"
            )
        check_unit(requested, "requested shares")
        check_unit(observed, "observed shares")
        lo = None if self.lo is None else as_array(self.lo, "share lo")
        hi = None if self.hi is None else as_array(self.hi, "share hi")
        check_interval(lo, hi, observed, "observed shares")
        for field, value in (("requested", requested), ("observed", observed), ("lo", lo),
                             ("hi", hi)):  # fmt: skip
            object.__setattr__(self, field, value)


def _panel(ax: Axes, shares: Sequence[AnswerShares], labels: Sequence[str]) -> None:
    first = shares[0]
    x = np.arange(len(first.answers), dtype=float)
    width = 0.8 / max(len(shares), 1)
    ax.bar(x, first.requested, width=0.9, fill=False, edgecolor="0.35", lw=1.0, label=REQUESTED)
    for i, (one, label) in enumerate(zip(shares, labels, strict=True)):
        offset = (i - (len(shares) - 1) / 2) * width
        yerr = None
        if one.lo is not None and one.hi is not None:
            yerr = error_lengths(one.observed, one.lo, one.hi)
        ax.bar(
            x + offset, one.observed, width=width * 0.9, color=COLORS[i % len(COLORS)],
            alpha=0.85, yerr=yerr, capsize=2, error_kw={"elinewidth": 0.8}, label=label,
        )  # fmt: skip
    ax.set_xticks(x, [str(a) for a in first.answers])
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_title(first.condition)


def _default_label(shares: AnswerShares) -> str:
    sampled = shares.lo is not None
    return "observed share (95 % Wilson)" if sampled else "exact probability (renormalised)"


def answer_share_panels(
    runs: Sequence[Sequence[AnswerShares]],
    out_dir: Path,
    stem: str = "answer_shares",
    *,
    title: str = "",
) -> list[Path]:
    """One panel per condition (those every run has), one bar colour per run."""
    if not runs or not all(runs):
        raise ValueError("no answer shares given: nothing to draw")
    by_run = [{s.condition: s for s in run} for run in runs]
    conditions = [s.condition for s in runs[0] if all(s.condition in r for r in by_run)]
    if not conditions:
        raise ValueError("the runs share no condition: nothing to draw side by side")
    labels = [run[0].label or _default_label(run[0]) for run in runs]
    with styled():
        fig, axes = panel_grid(len(conditions), (3.6, 3.0), sharey=True)
        for ax, condition in zip(axes, conditions, strict=True):
            _panel(ax, [r[condition] for r in by_run], labels)
        axes[0].set_ylabel("share of answers")
        figure_legend_below(fig, axes, ncol=min(len(runs) + 1, 4), first=[REQUESTED])
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, stem)
