"""Panels of the paper's Figs. 1–6 drawn from plain arrays: the caller extracts the data.

This module holds the response-curve family (Figs. 1, 2, 3c and 6); the distribution panels
(Figs. 3a/b, 4) live in ``panels_dist`` and the word panels (Fig. 5) in ``panels_words``,
both re-exported here, so that ``flipbench.figures.panels`` is the one import for every panel.
Each function writes ``<stem>.png`` and ``<stem>.svg`` into ``out_dir`` and returns those paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
from numpy.typing import ArrayLike

from flipbench.figures.common import (
    DIAGONAL_COLOR,
    MEAN_COLOR,
    SHADE_COLOR,
    FloatArray,
    as_array,
    check_finite,
    check_interval,
    check_same_shape,
    check_unit,
    corner_box,
    error_lengths,
    figure_legend_below,
    fitted_range,
    legend_below,
    percent_axis,
    s_text,
    save,
    styled,
    upper_left_is_emptier,
)
from flipbench.figures.panels_dist import (
    CountSample,
    GaussianSample,
    TernaryRates,
    count_histograms,
    gaussian_panel,
    gaussian_panels,
    ternary_panels,
)
from flipbench.figures.panels_words import WordPair, word_bias, word_bias_runs
from flipbench.metrics import step_likeness

__all__ = [
    "CountSample",
    "GaussianSample",
    "PositionS",
    "Series",
    "TernaryRates",
    "WordPair",
    "count_histograms",
    "game_axis_labels",
    "gaussian_panel",
    "gaussian_panels",
    "position_curves",
    "position_s",
    "position_s_curves",
    "response_curves",
    "ternary_panels",
    "word_bias",
    "word_bias_runs",
]

P_LABEL = 'requested p = P("1")'
R_LABEL = "response rate r"


@dataclass(frozen=True, eq=False)
class Series:
    """One response curve: rate r at each requested probability x, fractions in [0, 1].

    lo/hi are interval bounds (not offsets), e.g. Wilson 95 %; NaN rates (no valid answer)
    are allowed and leave a gap. s (and s_ci) are shown as given: the caller owns the metric.
    """

    label: str
    x: FloatArray
    r: FloatArray
    lo: FloatArray | None = None
    hi: FloatArray | None = None
    s: float | None = None
    s_ci: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise ValueError("series label must not be empty (it names the curve in the legend)")
        name = f"series {self.label!r}"
        x = as_array(self.x, f"{name}: x")
        r = as_array(self.r, f"{name}: r")
        check_same_shape(x, r, f"{name}: x", "r")
        check_finite(x, f"{name}: x")
        check_unit(x, f"{name}: x")
        check_unit(r, f"{name}: r")
        if not np.any(np.isfinite(r)):
            raise ValueError(f"{name}: r has no finite value, nothing to draw")
        lo = None if self.lo is None else as_array(self.lo, f"{name}: lo")
        hi = None if self.hi is None else as_array(self.hi, f"{name}: hi")
        check_interval(lo, hi, r, f"{name}: r")
        for field, value in (("x", x), ("r", r), ("lo", lo), ("hi", hi)):
            object.__setattr__(self, field, value)

    @property
    def legend_label(self) -> str:
        """The label with its S, as several curves on one axes show it."""
        return self.label if self.s is None else f"{self.label} ({s_text(self.s, self.s_ci)})"


def game_axis_labels(first: str, second: str) -> tuple[str, str]:
    """x and y labels of a Fig. 6 game, naming both options (x = optimal P of the first)."""
    return (f"optimal P({first})  [{first} vs {second}]", f"observed share of {first}")


def _draw_series(ax: Axes, series: Series, *, emphasis: bool, label: str) -> None:
    order = np.argsort(series.x, kind="stable")
    x, r = series.x[order], series.r[order]
    yerr = None
    if series.lo is not None and series.hi is not None:
        yerr = error_lengths(r, series.lo[order], series.hi[order])
    ax.errorbar(
        x,
        r,
        yerr=yerr,
        fmt="D-" if emphasis else "o-",
        color=MEAN_COLOR if emphasis else None,
        ms=4 if emphasis else 3.5,
        lw=1.8 if emphasis else 1.2,
        elinewidth=0.8,
        capsize=2,
        label=label,
        zorder=3 if emphasis else 2,
    )


def _curves(
    series: Sequence[Series],
    out_dir: Path,
    stem: str,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    note: str,
    emphasize_last: bool = False,
) -> list[Path]:
    """Shared body of response_curves and position_curves."""
    if not series:
        raise ValueError("no series given: nothing to draw")
    with styled():
        fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
        ax.plot([0, 1], [0, 1], ls="--", color=DIAGONAL_COLOR, lw=1, label="r = p (calibrated)")
        single = len(series) == 1
        box = note
        if single:
            only = series[0]
            order = np.argsort(only.x, kind="stable")
            x, r = only.x[order], only.r[order]
            ax.fill_between(x, x, r, color=SHADE_COLOR, alpha=0.15, lw=0, label="|r − p|")
            _draw_series(ax, only, emphasis=False, label=only.label)
            if only.s is not None:
                box = s_text(only.s, only.s_ci) + (f"\n{note}" if note else "")
        else:
            for i, one in enumerate(series):
                last = emphasize_last and i == len(series) - 1
                _draw_series(ax, one, emphasis=last, label=one.legend_label)
        xs = [float(v) for one in series for v in one.x]
        rs = [float(v) for one in series for v in one.r]
        bounds = [float(v) for one in series for b in (one.lo, one.hi) if b is not None for v in b]
        # The axes fit the grid; y also holds the diagonal over it and every rate and bound.
        x_lo, x_hi = fitted_range(xs)
        y_lo, y_hi = fitted_range(rs, must_hold=[x_lo, x_hi, *bounds])
        if box:
            fx = [(x - x_lo) / (x_hi - x_lo) for x in xs]  # corners in axes fractions
            fy = [(r - y_lo) / (y_hi - y_lo) for r in rs]
            corner_box(ax, box, upper_left_is_emptier(fx, fy))
        longest = max(len(one.legend_label) for one in series)
        legend_below(ax, ncol=3 if single else (1 if longest > 32 else 2))
        percent_axis(ax, "x", x_lo, x_hi)
        percent_axis(ax, "y", y_lo, y_hi)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        return save(fig, out_dir, stem)


def response_curves(
    series: Sequence[Series],
    out_dir: Path,
    stem: str = "response_curves",
    *,
    title: str = "",
    xlabel: str = P_LABEL,
    ylabel: str = R_LABEL,
    note: str = "",
) -> list[Path]:
    """r against requested p with the diagonal (Fig. 1; Fig. 6 games; overlays of models).

    One series gets the shaded |r − p| area and its S in a box in the emptier corner;
    several get lines + markers with each S in the legend. ``note`` (e.g. the invalid share)
    goes into the corner box.
    """
    return _curves(series, out_dir, stem, title=title, xlabel=xlabel, ylabel=ylabel, note=note)


def position_curves(
    p: ArrayLike,
    r: ArrayLike,
    out_dir: Path,
    stem: str = "position_curves",
    *,
    lo: ArrayLike | None = None,
    hi: ArrayLike | None = None,
    title: str = "",
    positions: Sequence[int] | None = None,
) -> list[Path]:
    """Fig. 2: r_j(p) for each position j of a D-flip reply plus Mean(r), each with its S.

    r has shape (D, len(p)): r[j - 1, i] is the rate of "1" at position j under p[i];
    lo/hi (same shape) are optional interval bounds. S is computed here with the fixed
    ``step_likeness`` so that every position is scored the same way. ``positions`` (1-based)
    draws only those curves, for large D; Mean(r) always averages all D positions.
    """
    pa = as_array(p, "p")
    ra = as_array(r, "r", ndim=2)
    if ra.shape[1] != pa.size:
        raise ValueError(f"r must have shape (D, {pa.size}) to match p, got {ra.shape}")
    lo_a = None if lo is None else as_array(lo, "lo", ndim=2)
    hi_a = None if hi is None else as_array(hi, "hi", ndim=2)
    check_interval(lo_a, hi_a, ra, "r")
    d = ra.shape[0]
    shown = list(range(1, d + 1)) if positions is None else sorted(set(positions))
    if not shown or shown[0] < 1 or shown[-1] > d:
        raise ValueError(f"positions must be a non-empty subset of 1..{d}, got {positions}")
    series = [
        Series(
            f"j = {j}",
            pa,
            ra[j - 1],
            None if lo_a is None else lo_a[j - 1],
            None if hi_a is None else hi_a[j - 1],
            s=step_likeness(pa, ra[j - 1]),
        )
        for j in shown
    ]
    mean = ra.mean(axis=0)
    series.append(Series("Mean(r)", pa, mean, s=step_likeness(pa, mean)))
    return _curves(
        series,
        out_dir,
        stem,
        title=title,
        xlabel=P_LABEL,
        ylabel="response rate r_j",
        note="" if len(shown) == d else f"{len(shown)} of D = {d} positions shown",
        emphasize_last=True,
    )


@dataclass(frozen=True, eq=False)
class PositionS:
    """Fig. 3c inputs for one D: S of each position j and of the running mean of the first J.

    Both arrays have length d (index 0 is j = 1 / J = 1). ``position_s`` computes them
    from per-position rates.
    """

    d: int
    s_j: FloatArray
    s_running: FloatArray
    label: str = ""

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"d (flips per reply) must be >= 1, got {self.d}")
        s_j = as_array(self.s_j, f"D = {self.d}: s_j")
        s_run = as_array(self.s_running, f"D = {self.d}: s_running")
        for name, arr in (("s_j", s_j), ("s_running", s_run)):
            if arr.size != self.d:
                raise ValueError(f"D = {self.d}: {name} must have {self.d} values, got {arr.size}")
            finite = arr[np.isfinite(arr)]
            if finite.size and (finite.min() < 0 or finite.max() > 3 + 1e-9):
                raise ValueError(f"D = {self.d}: {name} must lie in [0, 3], the range of S")
        object.__setattr__(self, "s_j", s_j)
        object.__setattr__(self, "s_running", s_run)

    @property
    def name(self) -> str:
        return self.label or f"D = {self.d}"


def position_s(p: ArrayLike, r: ArrayLike, label: str = "") -> PositionS:
    """S_j and running-mean S_J from rates r of shape (D, len(p)), with the fixed S algorithm."""
    pa = as_array(p, "p")
    ra = as_array(r, "r", ndim=2)
    if ra.shape[1] != pa.size:
        raise ValueError(f"r must have shape (D, {pa.size}) to match p, got {ra.shape}")
    d = ra.shape[0]
    running = np.cumsum(ra, axis=0) / np.arange(1, d + 1)[:, np.newaxis]
    s_j = [step_likeness(pa, ra[j]) for j in range(d)]
    s_run = [step_likeness(pa, running[j]) for j in range(d)]
    return PositionS(d, np.asarray(s_j), np.asarray(s_run), label)


def _position_axis(ax: Axes, d_max: int) -> None:
    """Integer positions; a log axis once D = 10 and D = 100 must share it."""
    if d_max > 20:
        ax.set_xscale("log")
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= d_max]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlim(0.85, d_max * 1.15)
    else:
        ax.xaxis.set_major_locator(FixedLocator(list(range(1, d_max + 1, 1 if d_max <= 12 else 2))))
        ax.set_xlim(0.5, d_max + 0.5)


def position_s_curves(
    curves: Sequence[PositionS],
    out_dir: Path,
    stem: str = "position_s_curves",
    *,
    title: str = "",
) -> list[Path]:
    """Fig. 3c: S_j against position j, and S of the running mean against J, one line per D."""
    if not curves:
        raise ValueError("no curves given: nothing to draw")
    d_max = max(c.d for c in curves)
    values = [v for c in curves for v in (*c.s_j, *c.s_running) if math.isfinite(v)]
    top = max([1.1, *(v + 0.08 for v in values)])
    with styled():
        fig, (ax_j, ax_run) = plt.subplots(1, 2, figsize=(8.4, 3.8), layout="constrained")
        for ax in (ax_j, ax_run):
            ax.axhline(1.0, ls=":", color=DIAGONAL_COLOR, lw=1, label="step (S = 1)")
        for c in curves:
            marker = "o" if c.d <= 20 else None
            pos = np.arange(1, c.d + 1)
            ax_j.plot(pos, c.s_j, marker=marker, ms=3.5, lw=1.2, label=c.name)
            ax_run.plot(pos, c.s_running, marker=marker, ms=3.5, lw=1.2, label=c.name)
        for ax, xlabel, heading in (
            (ax_j, "position j in the reply", "S of each position"),
            (ax_run, "first J positions averaged", "S of the running mean"),
        ):
            _position_axis(ax, d_max)
            ax.set_ylim(0, top)
            ax.set_xlabel(xlabel)
            ax.set_title(heading)
        ax_j.set_ylabel("step-likeness S")
        figure_legend_below(fig, [ax_j], ncol=min(len(curves) + 1, 5))
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, stem)
