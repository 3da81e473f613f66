"""Typed metrics of a run, one model per experiment kind (docs/experiments.md).

A kind's analysis returns one of these; `show --format json` writes it, the figures and the
report read its attributes — the numbers are never turned into JSON and parsed back. The
fits inside are the statistics modules' own result dataclasses (`Estimate`, `PositionCurves`,
`CategoricalFit`, …), so a metric has one definition from its computation to its reader.
JSON follows the one NaN policy of `estimate.strict_json` (non-finite numbers are null).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict

from flipbench.curves import PositionCurves, WordBias
from flipbench.distfit import CategoricalFit, CountHistogram
from flipbench.estimate import Estimate, strict_json
from flipbench.gaussfit import GaussianFit
from flipbench.sequence_tests import SequenceTests

__all__ = [
    "CategoricalMetrics",
    "ConditionFit",
    "CurveMetrics",
    "GameMetrics",
    "GaussianMetrics",
    "KindMetrics",
    "NoNumbers",
    "ReasoningGap",
    "SequenceMetrics",
    "StatedCondition",
    "TernaryMetrics",
    "WordMetrics",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KindMetrics(_Model):
    """Base of every kind's metrics."""

    def to_json(self) -> dict[str, Any]:
        """Strict JSON (NaN and infinities as null), in the fields' order."""
        out: dict[str, Any] = strict_json(self)
        return out


class CurveMetrics(KindMetrics):
    """A response curve r(x) of the first answer: its S (a coin flip), with its noise floor
    (the S a perfectly calibrated model is expected to score at this grid and n; 0 when
    exact) and its noise-corrected value (S minus its bootstrap bias, floored at 0)."""

    S: Estimate
    S_noise_floor: float | None = None
    S_corrected: float | None = None


class StatedCondition(_Model):
    x: float
    n_valid: int
    n_stated: int
    rate_first_when_stated: Estimate


class ReasoningGap(_Model):
    """Among replies whose reasoning states the optimal mix, what they then chose."""

    stated_share: Estimate
    S_stated: Estimate
    per_condition: list[StatedCondition]
    rule: str


class GameMetrics(CurveMetrics):
    """A game: S, the benchmark's direction score (raw and d), its trend variant (d_trend from
    the sign of the least-squares slope of r on x, and that slope; not scored) and the
    reasoning gap; the direction is None with fewer than two usable conditions, the gap
    without reply texts."""

    direction_raw: Estimate | None = None
    direction_d: Estimate | None = None
    reasoning_execution: ReasoningGap | None = None
    direction_trend: Estimate | None = None
    trend_slope: Estimate | None = None


class SequenceMetrics(KindMetrics):
    """D flips per reply or per turn: per-position curves; histograms for D >= 10; the serial
    tests (runs, autocorrelation, longest run, bigrams) per p (`sequence_tests`)."""

    positions: PositionCurves
    count_histograms: dict[str, CountHistogram] | None = None
    serial: dict[str, SequenceTests] | None = None


@dataclasses.dataclass(frozen=True)
class ConditionFit(CategoricalFit):
    """`distfit.CategoricalFit` of one condition, with its answers (in the rates' order)."""

    answers: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, fit: CategoricalFit, answers: list[str]) -> ConditionFit:
        fields = {f.name: getattr(fit, f.name) for f in dataclasses.fields(fit)}
        return cls(**fields, answers=answers)


class CategoricalMetrics(KindMetrics):
    """Draws over an answer set: a fit per condition (by grid value), the mean TV, and the S
    of the first answer's curve when every condition requests x for it."""

    per_condition: dict[str, ConditionFit]
    mean_tv: float | None = None
    S: Estimate | None = None


class TernaryMetrics(KindMetrics):
    """The ternary deck: the categorical fit per q, and the benchmark's areas A0–A2, S0–S2."""

    per_q: dict[str, ConditionFit]
    areas: dict[str, Estimate]


class NoNumbers(_Model):
    """A Gaussian run without a finite number yet."""

    n: int = 0
    n_dropped: int


class GaussianMetrics(KindMetrics):
    gaussian: GaussianFit | NoNumbers


class WordMetrics(KindMetrics):
    """Word pairs: per condition and pair (MOVER intervals), and the benchmark's biases."""

    words: WordBias
    bias: dict[str, Estimate]
