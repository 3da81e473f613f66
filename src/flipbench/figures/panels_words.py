"""Word-choice panels of the paper (Fig. 5): position bias and the red word's preference.

Import them from ``flipbench.figures.panels``; they live here only to keep modules short.
Each function writes ``<stem>.png`` and ``<stem>.svg`` into ``out_dir`` and returns the paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from flipbench.figures.common import (
    COLORS,
    DIAGONAL_COLOR,
    MEAN_COLOR,
    FloatArray,
    check_unit,
    error_lengths,
    figure_legend_below,
    panel_grid,
    percent_axis,
    save,
    styled,
)


@dataclass(frozen=True)
class WordPair:
    """Share of the pair's "red" word at p = 50 %, listed first (forward) or second (reverse).

    The CIs are (lo, hi) bounds; NaN shares (no valid answer) are left out of the panels.
    """

    red: str
    other: str
    forward: float
    reverse: float
    forward_ci: tuple[float, float] | None = None
    reverse_ci: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.red.strip() or not self.other.strip():
            words = f"{self.red!r}, {self.other!r}"
            raise ValueError(f"a word pair needs two non-empty words, got {words}")
        for name, share, ci in (
            ("forward", self.forward, self.forward_ci),
            ("reverse", self.reverse, self.reverse_ci),
        ):
            values = np.array([share, *(ci or ())], dtype=np.float64)
            check_unit(values, f"{self.name}: {name} share")
            if ci is not None and ci[0] > ci[1]:
                raise ValueError(f"{self.name}: {name} interval has lo > hi")

    @property
    def name(self) -> str:
        return f"{self.red} / {self.other}"


def _xerr(shares: FloatArray, cis: Sequence[tuple[float, float] | None]) -> FloatArray | None:
    if all(ci is None for ci in cis):
        return None
    lo = np.array([math.nan if ci is None else ci[0] for ci in cis])
    hi = np.array([math.nan if ci is None else ci[1] for ci in cis])
    return error_lengths(shares, lo, hi)


_FIRST, _SECOND = "red word listed first", "red word listed second"
_MEAN = "mean of both orders"


def _shares(pairs: Sequence[WordPair]) -> tuple[FloatArray, FloatArray]:
    return np.array([p.forward for p in pairs]), np.array([p.reverse for p in pairs])


def _dot_panel(ax: Axes, pairs: Sequence[WordPair], y: FloatArray) -> None:
    """Both orders of each pair joined by a bar, and their mean (the red word's preference)."""
    fwd, rev = _shares(pairs)
    fwd_err = _xerr(fwd, [p.forward_ci for p in pairs])
    rev_err = _xerr(rev, [p.reverse_ci for p in pairs])
    ax.hlines(y, np.fmin(fwd, rev), np.fmax(fwd, rev), color="0.7", lw=2, zorder=1)
    style: dict[str, Any] = {"ms": 5, "elinewidth": 0.8, "capsize": 2}
    ax.errorbar(fwd, y, xerr=fwd_err, fmt="o", color=COLORS[0], label=_FIRST, **style)
    ax.errorbar(rev, y, xerr=rev_err, fmt="s", color=COLORS[1], label=_SECOND, **style)
    ax.plot((fwd + rev) / 2, y, "D", color=MEAN_COLOR, ms=3.5, label=_MEAN, zorder=3)


def _share_axis(ax: Axes, heading: str) -> None:
    ax.axvline(0.5, color=DIAGONAL_COLOR, ls="--", lw=1, zorder=0)
    percent_axis(ax, "x")
    ax.set_xlabel("share of answers naming the red word")
    ax.set_title(heading)
    ax.grid(axis="y", visible=False)


def _pair_axis(ax: Axes, pairs: Sequence[WordPair], y: FloatArray) -> None:
    ax.set_yticks(y, [p.name for p in pairs])
    ax.set_ylim(len(pairs) - 0.4, -0.6)  # first pair on top
    ax.tick_params(axis="y", length=0)


def word_bias(
    pairs: Sequence[WordPair],
    out_dir: Path,
    stem: str = "word_bias",
    *,
    title: str = "",
) -> list[Path]:
    """Fig. 5: red-word share per pair in both orders, as bars around 50 % and as a dot plot.

    Bars show position bias (forward and reverse on opposite sides of 50 %); the dot plot's
    midpoint between the two orders shows the word (semantic) preference.
    """
    if not pairs:
        raise ValueError("no word pairs given: nothing to draw")
    y = np.arange(len(pairs), dtype=np.float64)
    fwd, rev = _shares(pairs)
    fwd_err = _xerr(fwd, [p.forward_ci for p in pairs])
    rev_err = _xerr(rev, [p.reverse_ci for p in pairs])
    with styled():
        fig, (ax_bar, ax_dot) = plt.subplots(
            1, 2, figsize=(8.6, 0.34 * len(pairs) + 1.5), sharey=True, layout="constrained"
        )
        h = 0.38
        bar_style = {"left": 0.5, "height": h, "error_kw": {"elinewidth": 0.8, "capsize": 2}}
        ax_bar.barh(y - h / 2, fwd - 0.5, xerr=fwd_err, color=COLORS[0], label=_FIRST, **bar_style)
        ax_bar.barh(y + h / 2, rev - 0.5, xerr=rev_err, color=COLORS[1], label=_SECOND, **bar_style)
        for offset, shares in ((-h / 2, fwd), (h / 2, rev)):
            for row in np.flatnonzero(np.isnan(shares)):
                ax_bar.text(0.52, y[row] + offset, "no data", va="center", fontsize=7, color="0.45")
        _dot_panel(ax_dot, pairs, y)
        _share_axis(ax_bar, "Red-word share, bars from 50%")
        _share_axis(ax_dot, "Per pair: both orders and their mean")
        _pair_axis(ax_bar, pairs, y)
        figure_legend_below(fig, [ax_bar, ax_dot], ncol=3)
        fig.suptitle(f"{title} · p = 50%" if title else "Word choice at p = 50%")
        return save(fig, out_dir, stem)


def word_bias_runs(
    runs: Sequence[tuple[str, Sequence[WordPair]]],
    out_dir: Path,
    stem: str = "word_bias_runs",
    *,
    title: str = "",
) -> list[Path]:
    """Fig. 5 for several models: one dot-plot panel per (label, pairs), pairs on shared rows.

    Rows are the union of the pairs, in order of first appearance; a pair a model lacks
    is left empty in its panel, so that every row means the same pair in every panel.
    """
    if not runs or not any(pairs for _, pairs in runs):
        raise ValueError("no word pairs given: nothing to draw")
    names = list(dict.fromkeys(p.name for _, pairs in runs for p in pairs))
    y = np.arange(len(names), dtype=np.float64)
    with styled():
        fig, axes = panel_grid(len(runs), (3.6, 0.34 * len(names) + 1.2), sharey=True)
        for ax, (label, pairs) in zip(axes, runs, strict=True):
            by_name = {p.name: p for p in pairs}
            rows = [by_name.get(n) or _missing(n) for n in names]
            _dot_panel(ax, rows, y)
            _share_axis(ax, label)
            _pair_axis(ax, rows, y)
        figure_legend_below(fig, axes, ncol=3, first=[_FIRST, _SECOND, _MEAN])
        fig.suptitle(f"{title} · p = 50%" if title else "Word choice at p = 50%")
        return save(fig, out_dir, stem)


def _missing(name: str) -> WordPair:
    red, _, other = name.partition(" / ")
    return WordPair(red, other, math.nan, math.nan)
