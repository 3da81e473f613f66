"""Word pairs at p = 50 % (paper Fig. 5): position bias and semantic (red word) bias."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flipbench.analysis import (
    Analysis,
    ConditionData,
    benchmark_intervals,
    estimate_text,
    word_cells,
)
from flipbench.curves import word_bias
from flipbench.kinds.base import ExperimentKind
from flipbench.metric_models import WordMetrics
from flipbench.scoring import BenchmarkParts
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.results import RunResults


class WordPairKind(ExperimentKind):
    names = ("word-pair",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        counts: dict[tuple[str, str], tuple[float, int | None]] = {}
        for d in data:
            if d.condition.x != 0.5:
                continue
            observed, n = d.observed()
            if n != 0:
                counts[(d.condition.group or "", d.order)] = (float(observed[0]), n)
        bias = word_bias(counts)
        keys = ("avg_pos_bias", "avg_red_bias", "Score_pos", "Score_sem")
        m = benchmark_intervals(lambda c: BenchmarkParts(exp5=c), word_cells(data), ("exp5",), keys)
        lines = [
            f"position bias: mean |r_first − 0.5| = {estimate_text(m['avg_pos_bias'])};"
            f" semantic (red word) bias: mean = {estimate_text(m['avg_red_bias'])}"
        ]
        metrics = WordMetrics(words=bias, bias=m)
        return Analysis(math.nan, (math.nan, math.nan), metrics, lines)

    def rate_label(self, experiment: ResolvedExperiment) -> str:
        return "first word"

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels import word_bias as draw

        pairs = rd.word_pairs(results)
        return draw(pairs, out_dir, "word_bias", title=run_title(results)) if pairs else []

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        from flipbench.figures import run_data as rd
        from flipbench.figures.panels import word_bias_runs

        pairs = zip(runs, labels, strict=True)
        groups = [(label, words) for r, label in pairs if (words := rd.word_pairs(r))]
        title = runs[0].run.experiment
        return word_bias_runs(groups, out_dir, stem, title=title) if groups else []


WORD_PAIR = WordPairKind()
