"""Distribution panels of the paper: Figs. 3a/b (counts of "1"), 4 (ternary, Gaussian), 5 (words).

Import them from ``flipbench.report.panels``; they live here only to keep modules short.
Each function writes ``<stem>.png`` and ``<stem>.svg`` into ``out_dir`` and returns the paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, MultipleLocator, PercentFormatter
from scipy import stats

from flipbench.report.common import (
    COLORS,
    DIAGONAL_COLOR,
    MEAN_COLOR,
    FloatArray,
    as_array,
    check_finite,
    check_interval,
    check_unit,
    error_lengths,
    figure_legend_below,
    percent_axis,
    save,
    styled,
)

_BOX = {"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.95}


def pct(x: float) -> str:
    """A fraction as the shortest percentage: 0.15 -> '15%', 0.495 -> '49.5%'."""
    return f"{x * 100:.6g}%"


def _grid(n: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """n panels, at most three to a row, spare cells removed."""
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axs = plt.subplots(
        nrows,
        ncols,
        figsize=(panel[0] * ncols, panel[1] * nrows),
        layout="constrained",
        squeeze=False,
    )
    flat: list[Axes] = list(axs.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


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


def _count_panel(ax: Axes, sample: CountSample) -> None:
    k = np.arange(sample.d + 1)
    observed = np.bincount(sample.counts.astype(np.int64), minlength=sample.d + 1) / len(
        sample.counts
    )
    expected = stats.binom.pmf(k, sample.d, sample.p)
    ax.bar(k, observed, width=0.8, color=COLORS[0], alpha=0.85, label=_OBSERVED)
    ax.plot(k, expected, "o-", color=MEAN_COLOR, ms=3.5, lw=1, label=_BINOMIAL)
    mean = float(sample.counts.mean())
    ratio = sample.variance_ratio
    text = (
        f"n = {sample.counts.size} replies\n"
        f"mean = {mean:.2f} (binomial {sample.d * sample.p:.2f})\n"
        f"variance ratio = {'nan' if math.isnan(ratio) else f'{ratio:.2f}'}"
    )
    # The box goes on the side of the axis that holds less of either distribution.
    left_mass = float(observed[: (sample.d + 1) // 2].sum() + expected[: (sample.d + 1) // 2].sum())
    right = left_mass >= 1.0
    ax.text(
        0.97 if right else 0.03,
        0.96,
        text,
        transform=ax.transAxes,
        ha="right" if right else "left",
        va="top",
        fontsize=8,
        bbox=_BOX,
    )
    top = float(max(observed.max(), expected.max()))
    # Room for the box above the bars, but no share axis beyond 100 %.
    ax.set_ylim(0, min(top * 1.45 + 0.02, 1.05))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.xaxis.set_major_locator(
        MultipleLocator(1) if sample.d <= 12 else MaxNLocator(integer=True, nbins=11)
    )
    ax.set_xlim(-0.7, sample.d + 0.7)
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
) -> list[Path]:
    """Figs. 3a/b: one panel per sample, histogram of "1" counts vs Binomial(D, p).

    The variance ratio in each panel shows the paper's point: replies are far less
    spread out than independent flips would be.
    """
    if not samples:
        raise ValueError("no count samples given: nothing to draw")
    with styled():
        fig, axes = _grid(len(samples), (4.0, 3.4))
        for ax, sample in zip(axes, samples, strict=True):
            _count_panel(ax, sample)
        axes[0].set_ylabel("share of replies")
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
    ax.text(
        0.03 if upper_left else 0.97,
        0.96,
        text,
        transform=ax.transAxes,
        ha="left" if upper_left else "right",
        va="top",
        fontsize=8,
        bbox=_BOX,
    )
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
        fig, axes = _grid(len(rates) + (gaussian is not None), (3.8, 3.6))
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


# ----- Fig. 5: word choice and position bias ---------------------------------------------------


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
    fwd = np.array([p.forward for p in pairs])
    rev = np.array([p.reverse for p in pairs])
    fwd_err = _xerr(fwd, [p.forward_ci for p in pairs])
    rev_err = _xerr(rev, [p.reverse_ci for p in pairs])
    first, second = "red word listed first", "red word listed second"
    with styled():
        fig, (ax_bar, ax_dot) = plt.subplots(
            1, 2, figsize=(8.6, 0.34 * len(pairs) + 1.5), sharey=True, layout="constrained"
        )
        h = 0.38
        bar_style = {"left": 0.5, "height": h, "error_kw": {"elinewidth": 0.8, "capsize": 2}}
        ax_bar.barh(y - h / 2, fwd - 0.5, xerr=fwd_err, color=COLORS[0], label=first, **bar_style)
        ax_bar.barh(y + h / 2, rev - 0.5, xerr=rev_err, color=COLORS[1], label=second, **bar_style)
        for offset, shares in ((-h / 2, fwd), (h / 2, rev)):
            for row in np.flatnonzero(np.isnan(shares)):
                ax_bar.text(0.52, y[row] + offset, "no data", va="center", fontsize=7, color="0.45")
        ax_dot.hlines(y, np.fmin(fwd, rev), np.fmax(fwd, rev), color="0.7", lw=2, zorder=1)
        ax_dot.errorbar(
            fwd, y, xerr=fwd_err, fmt="o", color=COLORS[0], ms=5, elinewidth=0.8, capsize=2
        )
        ax_dot.errorbar(
            rev, y, xerr=rev_err, fmt="s", color=COLORS[1], ms=5, elinewidth=0.8, capsize=2
        )
        ax_dot.plot(
            (fwd + rev) / 2, y, "D", color=MEAN_COLOR, ms=3.5, label="mean of both orders", zorder=3
        )
        for ax, heading in (
            (ax_bar, "Red-word share, bars from 50%"),
            (ax_dot, "Per pair: both orders and their mean"),
        ):
            ax.axvline(0.5, color=DIAGONAL_COLOR, ls="--", lw=1, zorder=0)
            percent_axis(ax, "x")
            ax.set_xlabel("share of answers naming the red word")
            ax.set_title(heading)
            ax.grid(axis="y", visible=False)
        ax_bar.set_yticks(y, [p.name for p in pairs])
        ax_bar.set_ylim(len(pairs) - 0.4, -0.6)  # first pair on top
        ax_bar.tick_params(axis="y", length=0)
        figure_legend_below(fig, [ax_bar, ax_dot], ncol=3)
        fig.suptitle(f"{title} · p = 50%" if title else "Word choice at p = 50%")
        return save(fig, out_dir, stem)
