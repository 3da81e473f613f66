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


def _settings(results: RunResults) -> dict[str, str]:
    experiment, run = results.experiment, results.run
    settings = {"grid": experiment.grid}
    if run.mode != "exact":  # one forward pass per condition: no N
        settings["N"] = str(experiment.n)
    settings["T"] = f"{experiment.temperature:g}"
    if run.config.get("constrained"):
        settings["constrained"] = "yes"
    return settings


def _settings_text(settings: dict[str, str]) -> str:
    return " · ".join(
        "constrained" if k == "constrained" else f"grid {v}" if k == "grid" else f"{k} = {v}"
        for k, v in settings.items()
    )


def run_settings(results: RunResults) -> str:
    """Grid, N and T (`grid zoom · N = 100 · T = 1`): with the mode, what decides whether two
    runs' figures can be compared. N is left out in exact mode."""
    return _settings_text(_settings(results))


def run_title(results: RunResults) -> str:
    """Experiment (with D where it varies), model and mode; then grid, N and T: what tells two
    figures apart. A run that did not complete says so (its curve is partial), and an S that is
    mostly r held flat beyond the grid is flagged (then not comparable)."""
    name = results.run.experiment
    if "D" in results.experiment.params:  # D flips per reply or turns: it tells runs apart
        name += f" (D = {results.experiment.d})"
    title = f"{name} · {results.run.model} · {results.run.mode}\n{run_settings(results)}"
    if results.partial:
        title += f" · partial ({results.grid_coverage.grid_share:.0%} of the grid)"
    if results.mostly_extrapolated:
        title += f" · S {results.s_extrapolated_share:.0%} extrapolated"
    return title


def overlay_title(runs: Sequence[RunResults]) -> str:
    """The experiment and modes, then each setting once: its value when the runs share it, else
    every value (`N = 100/1000`), so that an overlay never hides that its runs differ."""
    merged: dict[str, list[str]] = {}
    for r in runs:
        for key, value in _settings(r).items():
            merged.setdefault(key, [])
            if value not in merged[key]:
                merged[key].append(value)
    modes = "/".join(dict.fromkeys(r.run.mode for r in runs))
    settings = _settings_text({k: "/".join(v) for k, v in merged.items()})
    return f"{runs[0].run.experiment} · {modes}\n{settings}"


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
    title = overlay_title(runs)
    return response_curves(series, out_dir, stem, title=title, xlabel=axes[0], ylabel=axes[1])
