"""The Bayesian battery's in-context figures: evidence against N, P(heads) against θ, the chain.

`bayes_icl`: left, the mean total variation distance against the number of in-context flips
N (symlog axis, so that N = 0 shows) — to the true θ (solid) and to the posterior predictive of
each sequence (dashed) — beside the posterior floor (dotted: where a perfect Bayesian's TVD to
θ sits; TVD to θ cannot be expected to fall below it); right, the model's P(heads) against θ,
one line per N (statement-free prompts, mean over sequences), with the diagonal a model that
had learnt θ exactly would follow. `bayes_chain`: P(heads) after each prefix of the
switching sequences (each thin, their mean bold), the fitted memory model's curve (dashed) and
the bias that generated each flip (grey steps). The panels take plain numbers (the kind
converts its metrics): drawing knows nothing of runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullLocator

from flipbench.estimate import Estimate
from flipbench.figures.common import (
    COLORS,
    DIAGONAL_COLOR,
    FloatArray,
    legend_below,
    save,
    styled,
)

_STATEMENTS = ("none", "agreeing", "contradicting")


@dataclass(frozen=True)
class IclPoint:
    """One in-context prompt: θ, N, the statement, the model's P(heads), its TVDs and the
    posterior floor at (θ, N)."""

    theta: float
    n: int
    statement: str
    p_heads: float
    tvd_theta: float
    tvd_posterior: float
    floor: float


@dataclass(frozen=True, eq=False)
class ChainCurve:
    """One switching sequence: P(heads) after prefixes 0…L and the fitted model's curve."""

    sequence: int
    switch: int
    p_heads: FloatArray
    fitted: FloatArray
    thetas: tuple[float, float] = (0.75, 0.25)  # the bias before and after the switch


def _means(points: Sequence[IclPoint], attr: str) -> dict[tuple[str, int], float]:
    groups: dict[tuple[str, int], list[float]] = defaultdict(list)
    for p in points:
        groups[(p.statement, p.n)].append(float(getattr(p, attr)))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def icl_panels(points: Sequence[IclPoint], out_dir: Path, *, title: str = "") -> list[Path]:
    """TVD against N with the floor, and P(heads) against θ per N; `bayes_icl`.png/.svg."""
    if not points:
        raise ValueError("no in-context conditions to draw")
    to_theta, to_post = _means(points, "tvd_theta"), _means(points, "tvd_posterior")
    floor = _means(points, "floor")
    with styled():
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
        present = [s for s in _STATEMENTS if any(k[0] == s for k in floor)]
        for i, statement in enumerate(present):
            ns = sorted(n for s, n in to_theta if s == statement)
            color = COLORS[i]
            label = "" if statement == "none" else f" ({statement} statement)"
            left.plot(ns, [to_theta[(statement, n)] for n in ns], "o-", color=color,
                      label=f"TVD to θ{label}")  # fmt: skip
            left.plot(ns, [to_post[(statement, n)] for n in ns], "s--", color=color, alpha=0.8,
                      label=f"TVD to posterior{label}")  # fmt: skip
            if statement == "none":
                left.plot(ns, [floor[(statement, n)] for n in ns], ":", color=DIAGONAL_COLOR,
                          lw=2, label="posterior floor (Bayes, α₀ = β₀ = 1)")  # fmt: skip
        left.set_xscale("symlog", linthresh=1)
        lengths_drawn = sorted({n for _, n in to_theta})
        # Plain labels at the grid's N (symlog's own are mathtext, which the style turns off).
        left.set_xticks(lengths_drawn, [str(n) for n in lengths_drawn], minor=False)
        left.xaxis.set_minor_locator(NullLocator())
        left.set_xlim(left=-0.1)
        left.set_ylim(bottom=0)
        left.set_xlabel("in-context flips N (symlog)")
        left.set_ylabel("mean total variation distance")
        legend_below(left, ncol=2)

        free = [p for p in points if p.statement == "none"] or list(points)
        by_n: dict[int, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for p in free:
            by_n[p.n][p.theta].append(p.p_heads)
        right.plot([0, 1], [0, 1], "--", color=DIAGONAL_COLOR, lw=1, label="P(heads) = θ")
        cmap = plt.get_cmap("viridis")
        lengths = sorted(by_n)
        for j, n in enumerate(lengths):
            thetas = sorted(by_n[n])
            shade = cmap(j / max(1, len(lengths) - 1))
            means = [float(np.mean(by_n[n][t])) for t in thetas]
            right.plot(thetas, means, "o-", color=shade, ms=3, label=f"N = {n}")
        right.set_xlim(-0.03, 1.03)
        right.set_ylim(-0.03, 1.03)
        right.set_xlabel("θ (bias that drew the in-context flips)")
        right.set_ylabel("model P(heads), renormalised")
        legend_below(right, ncol=5)
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, "bayes_icl")


def chain_panel(
    curves: Sequence[ChainCurve], gamma: Estimate | None, out_dir: Path, *, title: str = ""
) -> list[Path]:
    """The posterior chain with the fitted memory model; `bayes_chain`.png/.svg."""
    if not curves:
        raise ValueError("no chain sequences to draw")
    length = max(len(c.p_heads) for c in curves)
    with styled():
        fig, ax = plt.subplots(figsize=(8, 4.2), constrained_layout=True)
        for c in curves:
            ax.plot(np.arange(len(c.p_heads)), c.p_heads, color=COLORS[0], lw=0.7, alpha=0.35)
        same = [c for c in curves if len(c.p_heads) == length]
        ks = np.arange(length)
        ax.plot(ks, np.nanmean([c.p_heads for c in same], axis=0), color=COLORS[0], lw=2,
                label=f"model P(heads), mean of {len(same)} sequences")  # fmt: skip
        fitted = np.array([c.fitted for c in same])
        if gamma is not None and np.isfinite(fitted).all():
            ax.plot(ks, fitted.mean(axis=0), "--", color=COLORS[1], lw=2,
                    label=f"memory model, γ = {gamma.value:.2f}"
                          f" [{gamma.low:.2f}, {gamma.high:.2f}]")  # fmt: skip
        switch = curves[0].switch
        ax.axvline(switch, color="0.4", lw=0.8)
        theta = np.where(ks < switch, *curves[0].thetas)
        ax.step(ks, theta, where="post", color=DIAGONAL_COLOR, lw=1.2, label="θ of the next flip")
        ax.set_xlim(0, length - 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("flips in context (prefix length)")
        ax.set_ylabel("P(heads), renormalised")
        legend_below(ax, ncol=3)
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, "bayes_chain")
