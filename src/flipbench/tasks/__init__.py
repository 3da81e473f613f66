"""Experiment definitions as data, looked up by name.

Every module of this package that defines `ExperimentDefinition`s at module level is found
and registered the first time the registry is read, so adding an experiment is adding one
module (docs/architecture.md); `register_experiment` adds one defined elsewhere (a plug-in, a
test). Found on first use, not on import: building the grids (thousands of in-context
conditions) cost ~100 ms of every CLI start, `flipbench runs` included, which needs none.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, MutableMapping

from flipbench.errors import FlipbenchError
from flipbench.tasks.definition import Condition, ExperimentDefinition, format_percent

#: Modules of this package that hold machinery, not experiments.
_NOT_EXPERIMENTS = frozenset({"definition", "protocols"})


class _Registry(MutableMapping[str, ExperimentDefinition]):
    """Name -> definition; the package's experiment modules are imported on first access."""

    def __init__(self) -> None:
        self._data: dict[str, ExperimentDefinition] = {}
        self._found = False

    def _all(self) -> dict[str, ExperimentDefinition]:
        if not self._found:
            self._found = True
            _discover()
        return self._data

    def __getitem__(self, name: str) -> ExperimentDefinition:
        return self._all()[name]

    def __setitem__(self, name: str, experiment: ExperimentDefinition) -> None:
        self._all()[name] = experiment

    def __delitem__(self, name: str) -> None:
        del self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


EXPERIMENTS: MutableMapping[str, ExperimentDefinition] = _Registry()


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


__all__ = [
    "EXPERIMENTS",
    "Condition",
    "ExperimentDefinition",
    "format_percent",
    "get_experiment",
    "register_experiment",
]
