"""A number with its interval, and the strict-JSON result base of the statistics modules.

``flipbench.distfit`` and ``flipbench.curves`` both return frozen dataclasses made of
``Estimate`` values; they share this one serialisation so that every figure and summary
reads intervals the same way.

One NaN policy for every JSON flipbench writes (`show --format json`, the metrics, the
benchmark summary): ``strict_json`` turns a non-finite float into ``null``, because strict
parsers (jq, browsers, JSON Schema validators) reject NaN and Infinity. Where an infinity
carries meaning, the result says so in a field of its own (``kl_infinite``, a p-value of 0),
never in the number.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from pydantic import BaseModel

__all__ = ["Estimate", "FitResult", "strict_json"]


def strict_json(value: Any) -> Any:
    """A JSON-ready copy: dataclasses and pydantic models to dicts (their fields in order),
    numpy scalars to Python numbers, tuples to lists, and non-finite floats to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class FitResult:
    """Base of the result dataclasses: one strict-JSON ``to_dict`` for all of them."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict that ``json.dumps(..., allow_nan=False)`` accepts."""
        out: dict[str, Any] = strict_json(self)
        return out


@dataclasses.dataclass(frozen=True)
class Estimate(FitResult):
    """A number with its interval; ``low == value == high`` for exact inputs."""

    value: float
    low: float
    high: float

    @classmethod
    def point(cls, value: float) -> Estimate:
        return cls(value, value, value)
