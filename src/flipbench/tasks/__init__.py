"""Experiment definitions as data, looked up by name."""

from __future__ import annotations

from flipbench.errors import FlipbenchError
from flipbench.tasks.definition import Condition, ExperimentDefinition, format_percent
from flipbench.tasks.single_flip import SINGLE_FLIP

EXPERIMENTS: dict[str, ExperimentDefinition] = {SINGLE_FLIP.name: SINGLE_FLIP}


def get_experiment(name: str) -> ExperimentDefinition:
    """Look an experiment up by name, with the known names in the error."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        known = ", ".join(sorted(EXPERIMENTS))
        raise FlipbenchError(f"unknown experiment {name!r} (known: {known})") from None


__all__ = ["EXPERIMENTS", "Condition", "ExperimentDefinition", "format_percent", "get_experiment"]
