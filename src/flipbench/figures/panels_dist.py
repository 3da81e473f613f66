"""Distribution panels of the paper: Figs. 3a/b (counts of "1") and 4 (ternary, Gaussian).

Import them from ``flipbench.figures.panels``; they live here only to keep modules short.
Each function writes ``<stem>.png`` and ``<stem>.svg`` into ``out_dir`` and returns the paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator, MultipleLocator, PercentFormatter
from scipy import stats

from flipbench.figures.common import (
    COLORS,
    MEAN_COLOR,
    FloatArray,
    as_array,
    check_finite,
    check_interval,
    check_unit,
    error_lengths,
    figure_legend_below,
    panel_grid,
    percent_axis,
    save,
    styled,
    top_box,
)


def pct(x: float) -> str:
    """A fraction as the shortest percentage: 0.15 -> '15%', 0.495 -> '49.5%'."""
    return f"{x * 100:.6g}%"


# ----- Fig. 3a/b: number of "1"s per reply against Binomial(D, p) ------------------------------


_OBSERVED = "observed share of replies"
_BINOMIAL = "Binomial(D, p) probability"


@dataclass(frozen=True, eq=False)
class CountSample:
    """Number of "1"s in each valid reply of d flips requested at probability p."""

    p: float
    d: int
    counts: FloatArray
    label: str = ""

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"d (flips per reply) must be >= 1, got {self.d}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be a fraction in [0, 1] (not a percentage), got {self.p}")
        counts = as_array(self.counts, f"counts at p = {pct(self.p)}")
        if np.any((counts < 0) | (counts > self.d) | (counts != np.round(counts))):
            raise ValueError(f"counts at p = {pct(self.p)} must be integers in [0, {self.d}]")
        object.__setattr__(self, "counts", counts)

    @property
    def variance_ratio(self) -> float:
        """Observed variance of the counts over the Binomial(d, p) variance; NaN if undefined."""
        binomial = self.d * self.p * (1.0 - self.p)
        if self.counts.size < 2 or binomial == 0.0:
            return math.nan
        return float(np.var(self.counts, ddof=1)) / binomial


def _visible_counts(observed: FloatArray, expected: FloatArray) -> tuple[int, int]:
    """The k range worth showing: all of it up to D = 30, else where either has mass.

    At D = 100 both distributions fill a tenth of the axis; zooming shows their shapes.
    """
    d = observed.size - 1
    if d <= 30:
        return 0, d
    ks = np.flatnonzero((observed > 0) | (expected > 1e-3))
    pad = max(2, (int(ks[-1]) - int(ks[0])) // 10)
    return max(0, int(ks[0]) - pad), min(d, int(ks[-1]) + pad)


def _count_panel(ax: Axes, sample: CountSample) -> None:
    k = np.arange(sample.d + 1)
    observed = np.bincount(sample.counts.astype(np.int64), minlength=sample.d + 1) / len(
        sample.counts
    )
    expected = stats.binom.pmf(k, sample.d, sample.p)
    lo, hi = _visible_counts(observed, expected)
    ax.bar(k, observed, width=0.8, color=COLORS[0], alpha=0.85, label=_OBSERVED)
    style = "o-" if hi - lo <= 30 else "-"  # a hundred markers would hide the bars
    ax.plot(k, expected, style, color=MEAN_COLOR, ms=3.5, lw=1, label=_BINOMIAL)
    mean = float(sample.counts.mean())
    ratio = sample.variance_ratio
    text = (
        f"n = {sample.counts.size} replies\n"
        f"mean = {mean:.2f} (binomial {sample.d * sample.p:.2f})\n"
        f"variance ratio = {'nan' if math.isnan(ratio) else f'{ratio:.2f}'}"
    )
    # The box goes on the side of the axis that holds less of either distribution.
    mid = (lo + hi + 1) // 2
    right = float(observed[lo:mid].sum() + expected[lo:mid].sum()) >= 1.0
    top_box(ax, text, left=not right)
    top = float(max(observed.max(), expected.max()))
    # Room for the box above the bars, but no share axis beyond 100 %.
    ax.set_ylim(0, min(top * 1.45 + 0.02, 1.05))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.xaxis.set_major_locator(
        MultipleLocator(1) if hi - lo <= 12 else MaxNLocator(integer=True, nbins=11)
    )
    ax.set_xlim(lo - 0.7, hi + 0.7)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel(f'number of "1"s in a reply of D = {sample.d}')
    heading = f"p = {pct(sample.p)}"
    ax.set_title(f"{heading} · {sample.label}" if sample.label else heading)


def count_histograms(
    samples: Sequence[CountSample],
    out_dir: Path,
    stem: str = "count_histograms",
    *,
    title: str = "",
    ncols: int = 3,
) -> list[Path]:
    """Figs. 3a/b: one panel per sample, histogram of "1" counts vs Binomial(D, p).

    The variance ratio in each panel shows the paper's point: replies are far less
    spread out than independent flips would be. ``ncols`` panels to a row (one per model,
    say, so that each row is one p).
    """
    if not samples:
        raise ValueError("no count samples given: nothing to draw")
    with styled():
        fig, axes = panel_grid(len(samples), (4.0, 3.4), ncols=ncols)
        for ax, sample in zip(axes, samples, strict=True):
            _count_panel(ax, sample)
        for ax in axes[:: max(ncols, 1)]:
            ax.set_ylabel("share of replies")
        figure_legend_below(fig, axes, ncol=2, first=[_OBSERVED, _BINOMIAL])
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, stem)


# ----- Fig. 4: ternary draw and the Gaussian companion -----------------------------------------

P1_FIXED = 0.4
Q_MAX = 0.6
_REQUESTED = ('requested P("0") = 60% − q', 'requested P("1") = 40%', 'requested P("2") = q')
_OBSERVED_K = tuple(f'observed r{k} = share of "{k}"' for k in range(3))
# Column-major legend: requested over observed, one column per outcome.
_TERNARY_ORDER = [label for pair in zip(_REQUESTED, _OBSERVED_K, strict=True) for label in pair]


@dataclass(frozen=True, eq=False)
class TernaryRates:
    """Observed shares of "0", "1", "2" at each requested q = P("2"); P("1") = 0.4 throughout.

    r has shape (len(q), 3) with columns for "0", "1", "2"; lo/hi are optional bounds of
    the same shape.
    """

    q: FloatArray
    r: FloatArray
    lo: FloatArray | None = None
    hi: FloatArray | None = None
    label: str = ""

    def __post_init__(self) -> None:
        q = as_array(self.q, "q")
        r = as_array(self.r, "ternary r", ndim=2)
        check_finite(q, "q")
        if q.min() < 0 or q.max() > Q_MAX + 1e-9:
            raise ValueError(f"q = P('2') must be a fraction in [0, {Q_MAX}], so that P('0') >= 0")
        if r.shape != (q.size, 3):
            raise ValueError(f"ternary r must have shape ({q.size}, 3) to match q, got {r.shape}")
        check_unit(r, "ternary r")
        lo = None if self.lo is None else as_array(self.lo, "ternary lo", ndim=2)
        hi = None if self.hi is None else as_array(self.hi, "ternary hi", ndim=2)
        check_interval(lo, hi, r, "ternary r")
        for field, value in (("q", q), ("r", r), ("lo", lo), ("hi", hi)):
            object.__setattr__(self, field, value)


def _ternary_panel(ax: Axes, rates: TernaryRates) -> None:
    line = np.array([0.0, Q_MAX])
    requested = (Q_MAX - line, np.full(2, P1_FIXED), line)
    order = np.argsort(rates.q, kind="stable")
    q = rates.q[order]
    for k, (marker, want) in enumerate(zip("os^", requested, strict=True)):
        color = COLORS[k]
        ax.plot(line, want, "-", color=color, lw=1.2, alpha=0.6, label=_REQUESTED[k])
        r = rates.r[order, k]
        yerr = None
        if rates.lo is not None and rates.hi is not None:
            yerr = error_lengths(r, rates.lo[order, k], rates.hi[order, k])
        ax.errorbar(
            q, r, yerr=yerr, fmt=marker, color=color, ms=4.5, elinewidth=0.8, capsize=2,
            label=_OBSERVED_K[k],
        )  # fmt: skip
    percent_axis(ax, "x", 0.0, Q_MAX)
    percent_axis(ax, "y")
    ax.set_xlabel('requested q = P("2")')
    if rates.label:
        ax.set_title(rates.label)


@dataclass(frozen=True, eq=False)
class GaussianSample:
    """Numbers the model returned when asked for draws from N(mean, sd), one per valid reply."""

    values: FloatArray
    mean: float = 100.0
    sd: float = 15.0
    label: str = ""

    def __post_init__(self) -> None:
        values = as_array(self.values, "Gaussian values")
        check_finite(values, "Gaussian values")
        if not (math.isfinite(self.mean) and math.isfinite(self.sd) and self.sd > 0):
            raise ValueError(f"need a finite mean and sd > 0, got N({self.mean}, {self.sd})")
        object.__setattr__(self, "values", values)


def _gaussian_panel(ax: Axes, g: GaussianSample) -> None:
    lo, hi = g.mean - 4 * g.sd, g.mean + 4 * g.sd
    width = g.sd / 3
    bins = [lo + width * i for i in range(25)]
    n = g.values.size
    ax.hist(
        g.values,
        bins=bins,
        weights=np.full(n, 1.0 / (n * width)),
        color=COLORS[5],
        alpha=0.85,
        label="answers (density)",
    )
    grid = np.linspace(lo, hi, 241)
    ax.plot(
        grid,
        stats.norm.pdf(grid, g.mean, g.sd),
        color=MEAN_COLOR,
        lw=1.2,
        label=f"requested N({g.mean:g}, {g.sd:g})",
    )
    ks = stats.kstest(g.values, "norm", args=(g.mean, g.sd))
    outside = int(np.sum((g.values < lo) | (g.values > hi)))
    text = (
        f"n = {n}\nmean = {g.values.mean():.1f}, sd = {g.values.std(ddof=1) if n > 1 else 0:.1f}\n"
        f"KS D = {ks.statistic:.2f}"
    )
    if outside:
        text += f"\n{outside} outside the axis"
    upper_left = float(np.median(g.values)) >= g.mean
    top_box(ax, text, left=upper_left)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.set_xlabel("number returned")
    ax.set_ylabel("density")
    ax.set_title(g.label or f"draws from N({g.mean:g}, {g.sd:g})")


def ternary_panels(
    rates: Sequence[TernaryRates],
    out_dir: Path,
    stem: str = "ternary_panels",
    *,
    gaussian: GaussianSample | None = None,
    title: str = "",
) -> list[Path]:
    """Fig. 4: per model, observed r0/r1/r2 (markers) against the requested lines over q,
    plus an optional Gaussian panel (histogram of answers against the requested density)."""
    if not rates and gaussian is None:
        raise ValueError("no ternary rates and no Gaussian sample given: nothing to draw")
    with styled():
        n = len(rates) + (gaussian is not None)
        # One ternary panel alone is widened to the width of its six-entry legend.
        fig, axes = panel_grid(n, (5.6, 4.2) if n == 1 and rates else (3.8, 3.6))
        for ax, one in zip(axes, rates, strict=False):
            _ternary_panel(ax, one)
        if rates:
            axes[0].set_ylabel("share of answers")
        if gaussian is not None:
            _gaussian_panel(axes[-1], gaussian)
        figure_legend_below(
            fig, axes, ncol=4 if gaussian is not None and rates else 3, first=_TERNARY_ORDER
        )
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, stem)


def gaussian_panel(
    sample: GaussianSample, out_dir: Path, stem: str = "gaussian_panel", *, title: str = ""
) -> list[Path]:
    """Fig. 4e on its own: the histogram of returned numbers against the requested density."""
    return ternary_panels([], out_dir, stem, gaussian=sample, title=title)


def gaussian_panels(
    samples: Sequence[GaussianSample],
    out_dir: Path,
    stem: str = "gaussian_panels",
    *,
    title: str = "",
) -> list[Path]:
    """Fig. 4e for several models side by side: one histogram per sample (label as title)."""
    if not samples:
        raise ValueError("no Gaussian samples given: nothing to draw")
    with styled():
        fig, axes = panel_grid(len(samples), (3.8, 3.4))
        for ax, sample in zip(axes, samples, strict=True):
            _gaussian_panel(ax, sample)
        top = max(ax.get_ylim()[1] for ax in axes)
        for ax in axes:  # one density scale, so that the panels compare at a glance
            ax.set_ylim(0, top)
        for ax in axes[1:]:
            ax.set_ylabel("")
        figure_legend_below(fig, axes, ncol=2)
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, stem)
