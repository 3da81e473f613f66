"""One look for every figure, deterministic files, and the input checks the panels share.

Every drawing function opens ``styled()``, draws, and ends with ``save()``: that keeps fonts,
colours and DPI identical across figures and makes two renders of the same data byte-identical
(fixed SVG hash salt, no creation date in the metadata).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from cycler import cycler
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    AutoMinorLocator,
    MaxNLocator,
    MultipleLocator,
    PercentFormatter,
)
from matplotlib.typing import RcKeyType
from numpy.typing import ArrayLike

from flipbench.metrics import check_unit as check_unit  # shared with the panels

FloatArray = npt.NDArray[np.float64]

DPI = 150
# Okabe–Ito, colour-blind safe; yellow left out because it vanishes on white.
COLORS: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#555555",
)
DIAGONAL_COLOR = "0.55"
SHADE_COLOR = COLORS[1]
MEAN_COLOR = "black"

_STYLE: dict[RcKeyType, Any] = {
    "axes.prop_cycle": cycler(color=list(COLORS)),
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Labels are data (model names, "$10M"): never read them as mathtext.
    "text.parse_math": False,
    # Real <text> in SVG: searchable and editable, and no glyph ids that could vary.
    "svg.fonttype": "none",
    "svg.hashsalt": "flipbench",
    "svg.id": None,
}
_FLOAT_TOL = 1e-9


@contextmanager
def styled() -> Iterator[None]:
    """Apply the shared look for the duration of one drawing, whatever the caller's rcParams."""
    with plt.rc_context(_STYLE):
        yield


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem``.png and .svg into out_dir, byte-identical on each render; close the figure."""
    if not stem or "/" in stem or "\\" in stem:
        raise ValueError(f"stem must be a plain file name without extension, got {stem!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    try:
        with plt.rc_context(_STYLE):
            fig.savefig(png, dpi=DPI, bbox_inches="tight", pad_inches=0.08)
            # The SVG backend stamps the current date unless told not to.
            fig.savefig(svg, bbox_inches="tight", pad_inches=0.08, metadata={"Date": None})
    finally:
        plt.close(fig)
    return [png, svg]


def fmt_s(x: float) -> str:
    """S (or any score) with three decimals; NaN spelled out rather than hidden."""
    return "nan" if math.isnan(x) else f"{x:.3f}"


def s_text(s: float, ci: tuple[float, float] | None = None) -> str:
    """'S = 0.812' plus the interval when there is one."""
    text = f"S = {fmt_s(s)}"
    if ci is not None and not (math.isnan(ci[0]) or math.isnan(ci[1])):
        text += f"  [{fmt_s(ci[0])}, {fmt_s(ci[1])}]"
    return text


def percent_axis(
    ax: Axes, which: Literal["x", "y", "both"] = "both", lo: float = 0.0, hi: float = 1.0
) -> None:
    """Fractions drawn as labelled percentages, with a little room so points at 0/1 show. A
    narrow range (a zoom grid) gets finer ticks, with as many decimals as they need."""
    span = hi - lo
    pad = (0.02 if span > 0.3 else 0.06) * span
    axes = [ax.xaxis, ax.yaxis] if which == "both" else [ax.xaxis if which == "x" else ax.yaxis]
    for axis in axes:
        if span > 0.3:
            major = 0.2 if span > 0.7 else 0.1
            axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
            axis.set_major_locator(MultipleLocator(major))
            axis.set_minor_locator(MultipleLocator(major / 2))
        else:  # decimals=None: as many as the view range needs (49.7 %, 49.99 %)
            axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
            axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
            axis.set_minor_locator(AutoMinorLocator(2))
    if which in ("both", "x"):
        ax.set_xlim(lo - pad, hi + pad)
    if which in ("both", "y"):
        ax.set_ylim(lo - pad, hi + pad)
    ax.grid(which="minor", alpha=0.1)


#: A grid spanning less than this share of [0, 1] gets an axis of its own, not the full 0–100 %.
ZOOM_BELOW = 0.5


def fitted_range(
    values: Sequence[float], *, must_hold: Sequence[float] = ()
) -> tuple[float, float]:
    """The range of an axis of fractions: [0, 1] when the values spread over half of it or
    more (the paper's look), else just around them (a zoom grid at 45–55 % or 49.7–50.3 %
    would otherwise be a smear in the middle of the full axis). `must_hold` widens it."""
    finite = [v for v in (*values, *must_hold) if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi - lo >= ZOOM_BELOW:
        return 0.0, 1.0
    if hi - lo < 1e-9:  # a single point: a small window around it
        lo, hi = lo - 0.05, hi + 0.05
    return max(lo, 0.0), min(hi, 1.0)


_FRAME = {"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.95}


def corner_box(ax: Axes, text: str, upper_left: bool) -> None:
    """A framed note in the upper-left or lower-right corner (the ones a diagonal leaves free)."""
    if upper_left:
        ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", fontsize=8, bbox=_FRAME)
    else:
        ax.text(0.96, 0.04, text, transform=ax.transAxes, ha="right", fontsize=8, bbox=_FRAME)


def top_box(ax: Axes, text: str, left: bool) -> None:
    """A framed note in a top corner, for panels whose data leave one of them free."""
    x, ha = (0.03, "left") if left else (0.97, "right")
    ax.text(x, 0.96, text, transform=ax.transAxes, ha=ha, va="top", fontsize=8, bbox=_FRAME)


def upper_left_is_emptier(xs: Sequence[float], ys: Sequence[float]) -> bool:
    """The diagonal crosses the lower-left and upper-right corners: pick the freer of the others."""
    upper_left = sum(x < 0.45 and y > 0.75 for x, y in zip(xs, ys, strict=True))
    lower_right = sum(x > 0.55 and y < 0.25 for x, y in zip(xs, ys, strict=True))
    return upper_left <= lower_right


def legend_below(ax: Axes, ncol: int = 3) -> None:
    """Legend under the axes, so that it never hides a data point."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, frameon=False, fontsize=8
        )


def figure_legend_below(
    fig: Figure, axes: Sequence[Axes], ncol: int = 3, first: Sequence[str] = ()
) -> None:
    """One legend under all panels (needs the constrained layout), each label once.

    Labels in ``first`` lead in that order, the rest follow in order of appearance;
    this matters because matplotlib lists error bars after plain lines.
    """
    seen: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    labels = [label for label in first if label in seen]
    labels += [label for label in seen if label not in labels]
    handles = [seen[label] for label in labels]
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)


def panel_grid(
    n: int, panel: tuple[float, float], *, sharey: bool = False, ncols: int = 3
) -> tuple[Figure, list[Axes]]:
    """n panels, at most ``ncols`` to a row, spare cells removed (constrained layout)."""
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    fig, axs = plt.subplots(
        nrows,
        ncols,
        figsize=(panel[0] * ncols, panel[1] * nrows),
        layout="constrained",
        squeeze=False,
        sharey=sharey,
    )
    flat: list[Axes] = list(axs.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


# ----- input checks -------------------------------------------------------------------------


def as_array(values: ArrayLike, name: str, *, ndim: int = 1) -> FloatArray:
    """A float array of the given rank with at least one element, or a ValueError naming it."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: nothing to draw")
    return arr


def check_same_shape(a: FloatArray, b: FloatArray, name_a: str, name_b: str) -> None:
    """Paired arrays must line up element by element."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} differ in shape: {a.shape} vs {b.shape}")


def check_finite(arr: FloatArray, name: str) -> None:
    """Positions on an axis (p, q, j) must be real numbers."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")


def check_interval(
    lo: FloatArray | None, hi: FloatArray | None, centre: FloatArray, name: str
) -> tuple[FloatArray, FloatArray] | None:
    """Interval bounds come as a pair shaped like the values; returns them validated."""
    if lo is None and hi is None:
        return None
    if lo is None or hi is None:
        raise ValueError(f"{name}: give both lo and hi, or neither")
    check_same_shape(centre, lo, name, f"{name} lo")
    check_same_shape(centre, hi, name, f"{name} hi")
    check_unit(lo, f"{name} lo")
    check_unit(hi, f"{name} hi")
    if np.any(lo > hi + _FLOAT_TOL):
        raise ValueError(f"{name}: lo must not exceed hi")
    return lo, hi


def error_lengths(centre: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Bounds to the (2, n) non-negative offsets errorbar() wants; NaN bounds draw no bar."""
    below = np.where(np.isfinite(lo), np.maximum(centre - lo, 0.0), 0.0)
    above = np.where(np.isfinite(hi), np.maximum(hi - centre, 0.0), 0.0)
    out: FloatArray = np.vstack([below, above])
    return out
