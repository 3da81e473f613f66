"""Every figure of a run, whatever its experiment, and overlays of several runs of one experiment.

Which panels a run gets is its experiment kind's choice (`flipbench.kinds`); this module only
decides when there is something to draw and how runs are labelled. Both draw only what the
results hold: a run without a valid answer yet gives no figure rather than an error, so that a
report of a stopped or failing run still completes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from flipbench.figures.run_data import has_answers
from flipbench.kinds import get_kind
from flipbench.results import RunResults, compute_results
from flipbench.store import Journal

__all__ = [
    "figures_for", "figures_for_run", "overlay_figures", "overlay_figures_for_runs", "run_labels",
]  # fmt: skip


def figures_for_run(journal: Journal, run_id: str, out_dir: Path) -> list[Path]:
    """All figures of one journaled run (see ``figures_for``).

    Returns [] before the first valid answer without computing anything, so that a run
    stopped at once (or one that only failed) still gets its report.
    """
    if not any(valid for valid, _, _ in journal.condition_counts(run_id).values()):
        return []
    return figures_for(compute_results(journal, run_id), out_dir)


def figures_for(results: RunResults, out_dir: Path) -> list[Path]:
    """The run's panels (its kind's), as PNG + SVG paths; [] before any valid answer."""
    if not has_answers(results):
        return []
    return get_kind(results.experiment.kind).figures(results, out_dir)


def overlay_figures_for_runs(
    journal: Journal, run_ids: Sequence[str], out_dir: Path, stem: str
) -> list[Path]:
    """``overlay_figures`` of journaled runs."""
    return overlay_figures([compute_results(journal, r) for r in run_ids], out_dir, stem)


def overlay_figures(results: Sequence[RunResults], out_dir: Path, stem: str) -> list[Path]:
    """Several runs of the same experiment on one figure each, labelled by model.

    Curves are overlaid where the kind has them; distributions get one panel per run (or per
    condition). Runs without a valid answer are left out, and nothing is drawn when none is
    left. ``stem`` names the main figure; further ones add a suffix to it.
    Raises ValueError for runs of different experiments.
    """
    _check_same_experiment(results)
    runs = [r for r in results if has_answers(r)]
    if not runs:
        return []
    return get_kind(runs[0].experiment.kind).overlay(runs, run_labels(runs), out_dir, stem)


def _check_same_experiment(results: Sequence[RunResults]) -> None:
    if not results:
        raise ValueError("no runs given: nothing to overlay")
    names = sorted({(r.run.experiment, r.experiment.kind) for r in results})
    if len(names) > 1:
        shown = ", ".join(name for name, _ in names)
        raise ValueError(f"cannot overlay runs of different experiments: {shown}")


def run_labels(runs: Sequence[RunResults]) -> list[str]:
    """Model names; D added when it differs between runs, the run id when names still clash."""
    labels = [r.run.model for r in runs]
    if len({r.experiment.d for r in runs}) > 1:
        labels = [f"{label} · D = {r.experiment.d}" for label, r in zip(labels, runs, strict=True)]
    clashes = Counter(labels)
    return [
        f"{label} ({r.run.run_id})" if clashes[label] > 1 else label
        for label, r in zip(labels, runs, strict=True)
    ]
