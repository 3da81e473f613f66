"""The Poisson insertion figure: the rate a model wrote against the rate it was asked for.

`bayes_poisson`: the estimated insertions per gap λ̂ against the requested λ, pooled over the
replies at each λ (bold, with the 95 % quasi-Poisson interval as error bars), each condition
(an in-context sequence) as a small dot, the in-context prefixes' own rates as open squares
(what the model was shown), and the diagonal a model that reproduces the rate would follow.
Several characters at one λ (the `chars` grids) are spread a little along x and labelled.
The panel takes plain numbers (the kind converts its metrics): drawing knows nothing of runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from flipbench.estimate import Estimate
from flipbench.figures.common import COLORS, DIAGONAL_COLOR, legend_below, save, styled


@dataclass(frozen=True)
class RatePoint:
    """A requested λ, the estimate read from the replies, the character and, in context, the
    rate of the prefix the model continued."""

    requested: float
    rate: Estimate
    char: str
    prefix_rate: float | None = None


def rate_panel(
    pooled: Sequence[RatePoint],
    single: Sequence[RatePoint] = (),
    out_dir: Path = Path("."),
    *,
    title: str = "",
) -> list[Path]:
    """λ̂ against λ with the diagonal; `bayes_poisson`.png/.svg."""
    if not pooled:
        raise ValueError("no rates to draw")
    chars = sorted({p.char for p in pooled})
    offset = {c: 0.012 * (i - (len(chars) - 1) / 2) for i, c in enumerate(chars)}
    values = [p.requested for p in pooled] + [p.rate.high for p in pooled]
    values += [p.rate.value for p in single]
    values += [p.prefix_rate for p in pooled if p.prefix_rate is not None]
    top = max(1.0, 1.05 * max(v for v in values if np.isfinite(v)))
    with styled():
        fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
        ax.plot([0, top], [0, top], "--", color=DIAGONAL_COLOR, lw=1, label="λ̂ = λ")
        for i, char in enumerate(chars):
            color = COLORS[i % len(COLORS)]
            mine = sorted((p for p in pooled if p.char == char), key=lambda p: p.requested)
            xs = np.array([p.requested + offset[char] for p in mine])
            ys = np.array([p.rate.value for p in mine])
            low = np.clip(ys - np.array([p.rate.low for p in mine]), 0, None)
            high = np.clip(np.array([p.rate.high for p in mine]) - ys, 0, None)
            label = "estimated λ̂, 95 % interval" + (f" ({char})" if len(chars) > 1 else "")
            ax.errorbar(xs, ys, yerr=[low, high], fmt="o-", color=color, lw=1.8, capsize=3,
                        label=label)  # fmt: skip
            dots = [p for p in single if p.char == char]
            if dots and len(dots) > len(mine):
                ax.plot([p.requested + offset[char] for p in dots], [p.rate.value for p in dots],
                        ".", color=color, alpha=0.45, ms=5, label="one sequence")  # fmt: skip
            shown = [(p.requested + offset[char], p.prefix_rate) for p in mine
                     if p.prefix_rate is not None]  # fmt: skip
            if shown:
                ax.plot([x for x, _ in shown], [y for _, y in shown], "s", mfc="none",
                        color=color, ms=6, label="the prefix's own rate")  # fmt: skip
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("requested rate λ (copies per gap between words)")
        ax.set_ylabel("estimated rate λ̂ (standalone copies per gap)")
        legend_below(ax, ncol=2)
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, "bayes_poisson")
