"""Experiment definitions as data, looked up by name.

Every module of this package that defines `ExperimentDefinition`s at module level is found
and registered when the package is imported, so adding an experiment is adding one module
(docs/architecture.md); `register_experiment` adds one defined elsewhere (a plug-in, a test).
"""

from __future__ import annotations

import importlib
import pkgutil

from flipbench.errors import FlipbenchError
from flipbench.tasks.definition import Condition, ExperimentDefinition, format_percent

#: Modules of this package that hold machinery, not experiments.
_NOT_EXPERIMENTS = frozenset({"definition", "protocols"})

EXPERIMENTS: dict[str, ExperimentDefinition] = {}


def register_experiment(experiment: ExperimentDefinition) -> ExperimentDefinition:
    """Make `experiment` available by its name; two different definitions may not share one."""
    known = EXPERIMENTS.get(experiment.name)
    if known is not None and known != experiment:
        raise FlipbenchError(f"two experiments are named {experiment.name!r}")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_EXPERIMENTS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, ExperimentDefinition):
                register_experiment(value)


def get_experiment(name: str) -> ExperimentDefinition:
    """Look an experiment up by name, with the known names in the error."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        known = ", ".join(sorted(EXPERIMENTS))
        raise FlipbenchError(f"unknown experiment {name!r} (known: {known})") from None


_discover()

__all__ = [
    "EXPERIMENTS",
    "Condition",
    "ExperimentDefinition",
    "format_percent",
    "get_experiment",
    "register_experiment",
]
