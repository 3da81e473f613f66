"""One number drawn from N(100, 15) (paper Fig. 4, right): moments, a goodness-of-fit test
(chi-square against the discretised normal for integer answers, else KS), histogram."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flipbench.analysis import Analysis, ConditionData, number_text
from flipbench.gaussfit import GaussianFit, gaussian_fit
from flipbench.kinds.base import ExperimentKind
from flipbench.metric_models import GaussianMetrics, NoNumbers
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.results import RunResults


def _number(answer: str) -> float:
    """A stored answer as a number; NaN when it is none (a journal holds whatever it holds)."""
    try:
        return float(answer)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _test_text(fit: GaussianFit) -> str:
    """The right-sized test (``GaussianFit.gof_test``): integer answers against the normal
    rounded to integers (the continuous KS rejects those too often), others by KS."""
    if fit.gof_test == "ks":
        return f"KS D = {number_text(fit.gof_stat)}"
    return f"integers vs rounded normal χ²({fit.gof_df}) = {fit.gof_stat:.1f}"


class GaussianKind(ExperimentKind):
    names = ("gaussian",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        answers = [a for d in data for a in d.answers]
        values = [v for v in map(_number, answers) if math.isfinite(v)]
        nan = (math.nan, math.nan)
        if not values:  # nothing valid yet, or only non-finite numbers: nothing to fit
            empty = GaussianMetrics(gaussian=NoNumbers(n_dropped=len(answers)))
            return Analysis(math.nan, nan, empty, ["no numbers to fit"])
        fit = gaussian_fit(values)
        fit = dataclasses.replace(fit, n_dropped=fit.n_dropped + len(answers) - len(values))
        lines = [
            f"mean {number_text(fit.mean.value)}, sd {number_text(fit.sd.value)}"
            f" (requested 100, 15); {_test_text(fit)}, p = {fit.gof_pvalue:.2g}"
            if math.isfinite(fit.gof_pvalue)
            else "no numbers to fit"
        ]
        return Analysis(math.nan, nan, GaussianMetrics(gaussian=fit), lines)

    def rate_label(self, experiment: ResolvedExperiment) -> str:
        return "rate"

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels import gaussian_panel

        sample = rd.gaussian_sample(results)
        title = run_title(results)
        return gaussian_panel(sample, out_dir, "gaussian", title=title) if sample else []

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.panels import gaussian_panels

        pairs = zip(runs, labels, strict=True)
        samples = [g for r, label in pairs if (g := rd.gaussian_sample(r, label)) is not None]
        title = runs[0].run.experiment
        return gaussian_panels(samples, out_dir, stem, title=title) if samples else []


GAUSSIAN = GaussianKind()
