"""The response-curve figure of a run (paper Fig. 1): r against p, the diagonal, intervals, and S.

A thin adapter from ``RunResults`` to ``panels.response_curves``, so that a run's own figure
and the paper panels share one look. Games reuse it with their options named on the axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flipbench.figures.panels import P_LABEL, R_LABEL, Series, response_curves

if TYPE_CHECKING:
    from flipbench.results import RunResults


def run_series(results: RunResults, label: str = "") -> Series | None:
    """The run's r(x) (Wilson intervals when sampled, points when exact); None if no rate yet.

    For sequence experiments the per-condition rate is Mean(r), so this is their mean curve.
    """
    conds = [c for c in results.conditions if not math.isnan(c.rate)]
    if not conds:
        return None
    exact = results.run.mode == "exact"
    if not label:
        first = results.experiment.first
        label = f'exact P("{first}") renormalised' if exact else "observed rate (95 % Wilson)"
    return Series(
        label,
        np.array([c.p for c in conds]),
        np.array([c.rate for c in conds]),
        None if exact else np.array([c.ci_low for c in conds]),
        None if exact else np.array([c.ci_high for c in conds]),
        s=results.s,
        s_ci=None if exact else results.s_ci,
    )


def run_note(results: RunResults) -> str:
    """Coverage of the answer tokens (exact) or the invalid share (sampled), for the corner box."""
    if results.run.mode == "exact":
        covs = [c.coverage for c in results.conditions if c.coverage is not None]
        return f"coverage {min(covs):.3f}–{max(covs):.3f}" if covs else ""
    invalid = sum(c.n_total - c.n_valid for c in results.conditions)
    total = results.n_requests
    return f"invalid {invalid}/{total} ({invalid / total:.1%})" if total else ""


def run_title(results: RunResults) -> str:
    """Experiment (with D where it varies), model and mode: what tells two figures apart; and
    a warning when S is mostly r held flat beyond the grid (then not comparable)."""
    name = results.run.experiment
    if "D" in results.experiment.params:  # D flips per reply or turns: it tells runs apart
        name += f" (D = {results.experiment.d})"
    title = f"{name} · {results.run.model} · {results.run.mode}"
    if results.mostly_extrapolated:
        title += f" · S {results.s_extrapolated_share:.0%} extrapolated"
    return title


def response_curve(
    results: RunResults,
    out_dir: Path,
    stem: str = "response_curve",
    *,
    xlabel: str = P_LABEL,
    ylabel: str = R_LABEL,
    extra: str = "",
) -> list[Path]:
    """Draw r(p) with Wilson intervals (a point in exact mode) and write PNG and SVG.

    A run without a single valid answer yet (all invalid, or stopped at once) has no curve:
    nothing is drawn and no path is returned, rather than failing the run's report.
    ``extra`` is one more line for the corner box (a game's direction score).
    """
    series = run_series(results)
    if series is None:
        return []
    note = "\n".join(line for line in (run_note(results), extra) if line)
    return response_curves(
        [series], out_dir, stem, title=run_title(results), xlabel=xlabel, ylabel=ylabel, note=note
    )


def overlay_curves(
    runs: Sequence[RunResults],
    labels: Sequence[str],
    out_dir: Path,
    stem: str,
    *,
    axes: tuple[str, str] = (P_LABEL, R_LABEL),
) -> list[Path]:
    """r(x) of each run on one axes, each S in the legend; ``axes`` names x and y."""
    series = [s for r, label in zip(runs, labels, strict=True) if (s := run_series(r, label))]
    if not series:
        return []
    title = runs[0].run.experiment
    return response_curves(series, out_dir, stem, title=title, xlabel=axes[0], ylabel=axes[1])
