"""The data of the 100-point benchmark (docs/benchmark.md): its inputs and its results.

Inputs are categorical per-condition distributions (``Cell`` / ``WordCell``, gathered in
``BenchmarkParts``) plus the ``Readings`` where the scoring table leaves a choice; results
are ``BenchmarkScore`` and ``BenchmarkIntervals``. They live apart from the arithmetic in
``flipbench.scoring`` so that code building or reading a benchmark needs only these plain,
validated, frozen records. Import them from ``flipbench.scoring`` (re-exported there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from flipbench.estimate import strict_json

__all__ = [
    "GAMES",
    "PARTS",
    "BenchmarkIntervals",
    "BenchmarkParts",
    "BenchmarkScore",
    "Cell",
    "JSONValue",
    "Metrics",
    "PartScore",
    "Readings",
    "WordCell",
]

FloatArray = npt.NDArray[np.float64]
Metrics: TypeAlias = "dict[str, float | Metrics]"
JSONValue: TypeAlias = "float | int | str | list[JSONValue] | dict[str, JSONValue] | None"

PARTS = ("exp1", "exp2", "exp3", "exp4", "exp5")
GAMES = ("bioinformatics", "matching_pennies", "business")
_SUM_TOL = 1e-6  # how far a distribution may miss summing to 1 (rounded shares, float noise)


def _checked_probs(probs: object, n: int | None, x: float) -> FloatArray:
    """Coerce to a read-only 1-D float array; a distribution unless n == 0 (then ignored)."""
    arr = np.array(probs, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"probs must be a 1-D distribution, got shape {arr.shape}")
    if n is not None and (not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0):
        raise ValueError(f"n must be None or an int >= 0, got {n!r}")
    if not math.isfinite(x):
        raise ValueError(f"x must be finite, got {x}")
    ok = np.all(np.isfinite(arr)) and arr.min() >= 0.0 and abs(arr.sum() - 1.0) <= _SUM_TOL
    if n != 0 and not ok:
        raise ValueError(f"probs must be non-negative and sum to 1, got {arr.tolist()}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Cell:
    """One condition: coordinate x, distribution over the part's categories, valid count n.

    ``n is None`` marks an exact distribution (fixed in the bootstrap); ``n == 0`` means no
    valid answers, so the rate is undefined and ``probs`` is ignored.
    """

    x: float
    probs: FloatArray
    n: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "probs", _checked_probs(self.probs, self.n, self.x))


@dataclass(frozen=True, eq=False)
class WordCell:
    """An Exp5 condition (p = 0.5); probs is over (first-listed word, second-listed word).

    The red word is listed first in "forward" order and second in "reverse" order.
    """

    pair: str
    order: Literal["forward", "reverse"]
    probs: FloatArray
    n: int | None

    def __post_init__(self) -> None:
        if self.order not in ("forward", "reverse"):
            raise ValueError(f"order must be 'forward' or 'reverse', got {self.order!r}")
        object.__setattr__(self, "probs", _checked_probs(self.probs, self.n, 0.5))


@dataclass(frozen=True)
class BenchmarkParts:
    """The five experiments' conditions; a part left empty scores NaN (not run)."""

    exp1: Sequence[Cell] = ()
    exp2: Sequence[Cell] = ()
    exp3: Sequence[Cell] = ()
    exp4: Mapping[str, Sequence[Cell]] = field(default_factory=dict)
    exp5: Sequence[WordCell] = ()


@dataclass(frozen=True)
class Readings:
    """The readings chosen where the scoring table leaves a choice (docs/benchmark.md), with
    their defaults; recorded in every summary."""

    exp3_norm_diagonal: float = 0.43  # ∫₀^0.6 max(P, 1 − P) dP: largest diagonal-target area
    exp3_norm_flat: float = 0.36  # the seed's value for the flat P1 = 0.4 target
    direction_dead_band: float = 0.0  # 0 = strict signs
    sem_divisor: float = 0.45  # exact 1/0.45, not the rounded 2.22

    def __post_init__(self) -> None:
        if min(self.exp3_norm_diagonal, self.exp3_norm_flat, self.sem_divisor) <= 0:
            raise ValueError("normalisers and sem_divisor must be > 0")
        if self.direction_dead_band < 0:
            raise ValueError("direction_dead_band must be >= 0")

    def as_dict(self) -> dict[str, float | str]:
        band = self.direction_dead_band
        rule = "strict-sign" if band == 0 else f"sign with dead band {band:g}"
        variant = "(1 + sign of the least-squares slope of r on x)/2, not scored"
        return {**asdict(self), "direction": f"{rule} (raw+1)/2", "direction_trend": variant}


def _json(value: object) -> JSONValue:
    """Strict JSON by the one NaN policy (`estimate.strict_json`): NaN/inf become None."""
    out: JSONValue = strict_json(value)
    return out


@dataclass(frozen=True)
class PartScore:
    """One part: its score out of ``max_score``, every sub-metric, and notes on gaps."""

    score: float
    metrics: Metrics
    notes: tuple[str, ...] = ()
    max_score: float = 20.0


@dataclass(frozen=True)
class BenchmarkScore:
    """All five parts, the total (NaN if any part is undefined) and the readings used."""

    parts: dict[str, PartScore]
    total: float
    readings: dict[str, float | str]

    def to_dict(self) -> dict[str, JSONValue]:
        parts = {
            name: dict(score=p.score, max_score=p.max_score, metrics=p.metrics, notes=p.notes)
            for name, p in self.parts.items()
        }
        return {
            "total": _json(self.total),
            "max_total": 100.0,
            "readings": _json(self.readings),
            "parts": _json(parts),
        }


@dataclass(frozen=True)
class BenchmarkIntervals:
    """Intervals (low, high) for every part and for "total": ``intervals`` the bias-aware ones
    (``bootstrap.bias_aware_interval``, coverage measured in tests/test_coverage.py),
    ``percentile`` the plain percentile intervals of the same replicates (they miss calibrated
    models), ``corrected`` each score minus its bootstrap bias."""

    intervals: dict[str, tuple[float, float]]
    n_boot: int
    confidence: float
    seed: int
    percentile: dict[str, tuple[float, float]] = field(default_factory=dict)
    corrected: dict[str, float] = field(default_factory=dict)
    method: str = "bias-aware"

    def to_dict(self) -> dict[str, JSONValue]:
        out = dict(n_boot=self.n_boot, confidence=self.confidence, seed=self.seed)
        extra = dict(percentile=_json(self.percentile), corrected=_json(self.corrected))
        return {"intervals": _json(self.intervals), **out, **extra, "method": self.method}
