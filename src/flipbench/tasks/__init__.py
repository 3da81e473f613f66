"""Experiment definitions as data, looked up by name."""

from __future__ import annotations

from flipbench.errors import FlipbenchError
from flipbench.tasks.definition import Condition, ExperimentDefinition, format_percent
from flipbench.tasks.draws import GAUSSIAN, TERNARY
from flipbench.tasks.flips import CHAINED_FLIPS, D_FLIPS
from flipbench.tasks.games import BIOINFORMATICS, BUSINESS, MATCHING_PENNIES
from flipbench.tasks.single_flip import SINGLE_FLIP
from flipbench.tasks.words import WORD_BIAS

EXPERIMENTS: dict[str, ExperimentDefinition] = {
    e.name: e
    for e in (
        SINGLE_FLIP, D_FLIPS, CHAINED_FLIPS, TERNARY, GAUSSIAN, WORD_BIAS,
        BIOINFORMATICS, MATCHING_PENNIES, BUSINESS,
    )
}  # fmt: skip


def get_experiment(name: str) -> ExperimentDefinition:
    """Look an experiment up by name, with the known names in the error."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        known = ", ".join(sorted(EXPERIMENTS))
        raise FlipbenchError(f"unknown experiment {name!r} (known: {known})") from None


__all__ = ["EXPERIMENTS", "Condition", "ExperimentDefinition", "format_percent", "get_experiment"]
