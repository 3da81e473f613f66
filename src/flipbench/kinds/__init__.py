"""Experiment kinds, looked up by name like the backends (docs/architecture.md).

Built-in kinds are imported on first use; a kind defined elsewhere (a plug-in, a test)
joins with `register_kind`. An unknown name is a user error that lists the known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from flipbench.analysis import Analysis, ConditionData
from flipbench.errors import FlipbenchError
from flipbench.kinds.base import ExperimentKind
from flipbench.tasks.definition import ResolvedExperiment

#: Built-in kinds: name -> "module:attribute", imported when first asked for.
_BUILTIN = {
    "flip": "flipbench.kinds.curve:FLIP",
    "game": "flipbench.kinds.curve:GAME",
    "d-flips": "flipbench.kinds.sequences:SEQUENCES",
    "chained": "flipbench.kinds.sequences:SEQUENCES",
    "categorical": "flipbench.kinds.categorical:CATEGORICAL",
    "ternary": "flipbench.kinds.categorical:TERNARY",
    "gaussian": "flipbench.kinds.gaussian:GAUSSIAN",
    "word-pair": "flipbench.kinds.words:WORD_PAIR",
    "bayes-bias": "flipbench.kinds.bayes_bias:BAYES_BIAS",
    "bayes-icl": "flipbench.kinds.bayes_icl:BAYES_ICL",
    "bayes-poisson": "flipbench.kinds.bayes_poisson:BAYES_POISSON",
}
_REGISTERED: dict[str, ExperimentKind] = {}


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    """Make `kind` available under each of its names (a later registration wins)."""
    for name in kind.names:
        _REGISTERED[name] = kind
    return kind


def kind_names() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTERED})


def get_kind(name: str) -> ExperimentKind:
    """The kind registered under `name`."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        known = ", ".join(kind_names())
        raise FlipbenchError(f"unknown experiment kind {name!r} (known: {known})")
    module, attribute = target.split(":")
    kind = getattr(importlib.import_module(module), attribute)
    assert isinstance(kind, ExperimentKind)
    _REGISTERED[name] = kind
    return kind


def analyse(experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
    """Every metric of a run, by its experiment's kind."""
    return get_kind(experiment.kind).analyse(experiment, data)


__all__ = ["ExperimentKind", "analyse", "get_kind", "kind_names", "register_kind"]
