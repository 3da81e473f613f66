"""A cell's benchmark part score and its change against `direct` (Δscore).

An experiment that is one of the 100-point benchmark's runs (docs/benchmark.md: the single
flip is part 1, D = 2 flips part 2, the ternary draw part 3, each game a third of part 4, the
word pairs part 5) is scored as `flipbench bench` scores that part, out of its 20 points, with
its bias-aware bootstrap interval. Δscore = score − score(direct) gets the interval ΔS gets
(`curves.step_likeness_difference`): each side's interval at √0.95, differenced, which covers
whenever both sides do. The score is the benchmark's only on the benchmark's grid and N; the
table says which grid each cell ran.
"""

from __future__ import annotations

import math

from flipbench.benchmark import PART_RUNS, parts_of
from flipbench.estimate import Estimate
from flipbench.results import RunResults
from flipbench.scoring import bootstrap_benchmark, score_benchmark

__all__ = ["delta_score", "part_score"]

#: Replicates of a cell's part score (the matrix reads every cell: fewer than `bench`'s).
N_BOOT = 500
SIDE = math.sqrt(0.95)


def part_score(results: RunResults, confidence: float = SIDE) -> tuple[str, Estimate] | None:
    """(part, score out of 20 with its interval) when the run is one of the benchmark's, else
    None (another experiment, another D, or a score the scoring leaves undefined)."""
    experiment = results.experiment
    run = next(
        (p for p in PART_RUNS
         if p.experiment == experiment.name and (p.d is None or p.d == experiment.d)),
        None,
    )  # fmt: skip
    if run is None:
        return None
    parts = parts_of({run.key: results})
    score = score_benchmark(parts).parts[run.part].score
    if score is None or math.isnan(score):
        return None
    low, high = bootstrap_benchmark(parts, n_boot=N_BOOT, seed=0, confidence=confidence).intervals[
        run.part
    ]
    if low is None or high is None:
        return run.part, Estimate(score, math.nan, math.nan)
    return run.part, Estimate(score, low, high)


def delta_score(base: Estimate, other: Estimate) -> Estimate:
    """other − base, its interval from the two sides' √0.95 intervals, differenced."""
    return Estimate(other.value - base.value, other.low - base.high, other.high - base.low)
