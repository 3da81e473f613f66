"""The contract of an experiment kind: what a run's numbers mean and how they are shown.

An experiment definition is data; its `kind` names one of these objects, which bundles the
four things that differ between kinds — the analysis (metrics and `show` lines), the figures
of one run, the overlay of several runs of one experiment, and the table's rate column — so
that a new kind is one module and a registration (docs/architecture.md), not a branch in
five places.

Figures are imported inside the methods: matplotlib loads only when something is drawn,
which keeps `flipbench show` and `runs` quick to start.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from flipbench.analysis import Analysis, ConditionData
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.results import RunResults


class ExperimentKind(ABC):
    """One kind of experiment. Subclasses set `names` and implement `analyse`; the default
    figures are the response curve r(x) of each condition's `first` answer."""

    #: The `kind` values of definitions this object serves.
    names: ClassVar[tuple[str, ...]]

    @abstractmethod
    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        """Every metric of a run from its conditions' answers (sampled) or distributions."""

    def rate_label(self, experiment: ResolvedExperiment) -> str:
        """The heading of the table's rate column."""
        return f'P("{experiment.first}")' if experiment.first else "rate"

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        """The run's figures as PNG + SVG paths (called only once a valid answer exists)."""
        from flipbench.figures.figure import response_curve

        return response_curve(results, out_dir)

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        """Several runs of one experiment (each with a valid answer) on one figure each."""
        from flipbench.figures.figure import overlay_curves

        return overlay_curves(runs, labels, out_dir, stem)
