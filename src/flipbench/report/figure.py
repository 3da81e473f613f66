"""The response-curve figure of the paper's Fig. 1: r against p, the diagonal, intervals, and S."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt

from flipbench.results import RunResults


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3f}"


def response_curve(results: RunResults, out_dir: Path, stem: str = "response_curve") -> list[Path]:
    """Draw r(p) with Wilson intervals (a point in exact mode) and write PNG and SVG."""
    conds = [c for c in results.conditions if not math.isnan(c.rate)]
    ps = [c.p for c in conds]
    rs = [c.rate for c in conds]
    fig, ax = plt.subplots(figsize=(5.4, 5.0), dpi=150)
    ax.plot([0, 1], [0, 1], ls="--", color="0.55", lw=1, label="r = p (calibrated)")
    ax.fill_between(ps, ps, rs, color="tab:red", alpha=0.15, lw=0, label="|r − p|")
    low = [max(0.0, c.rate - c.ci_low) for c in conds]
    high = [max(0.0, c.ci_high - c.rate) for c in conds]
    exact = results.run.mode == "exact"
    ax.errorbar(
        ps,
        rs,
        yerr=None if exact else [low, high],
        fmt="o-",
        color="tab:blue",
        ms=4,
        lw=1.4,
        capsize=2,
        label='exact P("1") renormalised' if exact else "observed rate (95 % Wilson)",
    )
    lo, hi = results.s_ci
    s_text = f"S = {_fmt(results.s)}"
    if not exact and not math.isnan(lo):
        s_text += f"  [{_fmt(lo)}, {_fmt(hi)}]"
    if exact:
        covs = [c.coverage for c in conds if c.coverage is not None]
        if covs:
            s_text += f"\ncoverage {min(covs):.3f}–{max(covs):.3f}"
    else:
        invalid = sum(c.n_total - c.n_valid for c in results.conditions)
        total = results.n_requests
        if total:
            s_text += f"\ninvalid {invalid}/{total} ({invalid / total:.1%})"
    # The diagonal crosses the lower-left and upper-right corners, so the S box takes whichever
    # of the other two holds fewer points of the curve.
    upper_left = sum(p < 0.45 and r > 0.75 for p, r in zip(ps, rs, strict=True))
    lower_right = sum(p > 0.55 and r < 0.25 for p, r in zip(ps, rs, strict=True))
    frame = {"boxstyle": "round", "fc": "white", "ec": "0.8"}
    if upper_left <= lower_right:
        ax.text(0.04, 0.96, s_text, transform=ax.transAxes, va="top", fontsize=9, bbox=frame)
    else:
        ax.text(0.96, 0.04, s_text, transform=ax.transAxes, ha="right", fontsize=9, bbox=frame)
    # Below the axes, so that it never hides a point of the curve.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel('requested p = P("1")')
    ax.set_ylabel("response rate r")
    ax.set_title(f"{results.run.experiment} · {results.run.model} · {results.run.mode}", fontsize=9)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return paths
