"""The panels of the Bayesian battery's priors and needles (bayesian.md, figures).

* `needle_curve`: P(first) against the requested bias, with the diagonal a model that takes
  the statement at its word would sit on (the paper's "P(heads) against the requested bias");
* `prior_spread`: P(first) after each paraphrase stem, with the mean ± sd band and the uniform
  target (the paper's "prior spreads"): one stem's number is not a model's prior;
* `depth_heatmap`: |P(heads) − b| per needle depth × filler length, the number in each cell.

They take plain numbers (the kind reads them from its metrics) and use the shared look and
writer of `figures.common`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import PercentFormatter

from flipbench.figures.common import COLORS, DIAGONAL_COLOR, save, styled

_LABEL_CHARS = 48


class Spread(NamedTuple):
    """P(`answer`) over a prior's stems: mean, sd and the requested share."""

    answer: str
    mean: float
    sd: float
    target: float


class Cell(NamedTuple):
    """One needle condition: filler length (words), depth, stated share, |P(first) − b|."""

    length: int
    depth: float
    requested: float
    error: float


def needle_curve(
    requested: Sequence[float], rates: Sequence[float], answer: str, out_dir: Path, *,
    title: str = "", stem: str = "needle_curve",
) -> list[Path]:  # fmt: skip
    """P(`answer`) against the stated share, on the diagonal when the model follows it."""
    xs, ys = np.asarray(requested, dtype=float), np.asarray(rates, dtype=float)
    order = np.argsort(xs)
    with styled():
        fig, ax = plt.subplots(figsize=(4.6, 4.0))
        ax.plot([0, 1], [0, 1], ls="--", color=DIAGONAL_COLOR, lw=1, label="as stated")
        ax.plot(xs[order], ys[order], marker="o", ms=4, color=COLORS[0],
                label=f'P("{answer}") read')  # fmt: skip
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_xlabel(f'stated share of "{answer}" (b)')
        ax.set_ylabel(f'P("{answer}")')
        ax.legend(loc="upper left")
        if title:
            ax.set_title(title)
        return save(fig, out_dir, stem)


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else "…" + text[-(_LABEL_CHARS - 1) :]


def prior_spread(
    labels: Sequence[str], rates: Sequence[float], spread: Spread, out_dir: Path, *,
    title: str = "", stem: str = "prior_spread",
) -> list[Path]:  # fmt: skip
    """One dot per stem (sorted), the mean ± sd band over stems and the target."""
    ys = np.asarray(rates, dtype=float)
    order = np.argsort(ys)
    height = 1.0 + 0.22 * len(labels)
    with styled():
        fig, ax = plt.subplots(figsize=(6.4, height))
        pos = np.arange(len(labels))
        ax.axvspan(spread.mean - spread.sd, spread.mean + spread.sd, color=COLORS[0], alpha=0.15,
                   label=f"mean ± sd ({spread.mean:.2f} ± {spread.sd:.2f})")  # fmt: skip
        ax.axvline(spread.mean, color=COLORS[0], lw=1)
        if math.isfinite(spread.target):
            ax.axvline(spread.target, color=DIAGONAL_COLOR, ls="--", lw=1,
                       label=f"target {spread.target:.2f}")  # fmt: skip
        ax.plot(ys[order], pos, "o", ms=4, color=COLORS[1], label="one stem")
        ax.set_yticks(pos, [_short(labels[i]) for i in order])
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_xlabel(f'P("{spread.answer}") after the stem')
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
        if title:
            fig.suptitle(title, y=1.0 + 0.35 / height)
        return save(fig, out_dir, stem)


def depth_heatmap(
    cells: Sequence[Cell], out_dir: Path, *, title: str = "", stem: str = "needle_heatmap"
) -> list[Path]:
    """|P(heads) − b| per depth (rows) × filler length (columns); a length-0 filler has one
    prompt whatever the depth, so its value fills its column. With several b, their mean."""
    if not cells:
        raise ValueError("no depth × length cells to draw")
    lengths = sorted({c.length for c in cells})
    depths = sorted({c.depth for c in cells if c.length > 0} or {0.0})
    grid = np.full((len(depths), len(lengths)), np.nan)
    for j, n in enumerate(lengths):
        for i, d in enumerate(depths):
            found = [c.error for c in cells if c.length == n and (n == 0 or c.depth == d)]
            if found:
                grid[i, j] = float(np.mean(found))
    requested = sorted({c.requested for c in cells})
    with styled():
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(lengths), 1.0 + 0.55 * len(depths)))
        image = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=max(0.5, float(np.nanmax(grid))),
                          aspect="auto", origin="upper")  # fmt: skip
        for (i, j), value in np.ndenumerate(grid):
            if math.isfinite(value):
                shade = "white" if value > 0.3 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=shade, fontsize=8)
        ax.set_xticks(range(len(lengths)), [str(n) for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:g}" for d in depths])
        ax.set_xlabel("filler length (words)")
        ax.set_ylabel("needle depth (0 = start, 1 = just before the question)")
        ax.grid(False)
        stated = ", ".join(f"{b:.0%}" for b in requested)
        fig.colorbar(image, ax=ax, label=f"|P(heads) − b|, b = {stated}")
        if title:
            ax.set_title(title)
        return save(fig, out_dir, stem)
