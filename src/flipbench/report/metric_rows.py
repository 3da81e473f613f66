"""A kind's typed metrics as flat table rows: name, value, interval, noise floor, corrected.

Every kind's metrics are a different pydantic model (`metric_models`), some nested several
levels deep (per position, per condition, per game). The report shows all of them without a
template per kind: the strict JSON view (`KindMetrics.to_json`, the one `show --format json`
writes) is walked, an `{value, low, high}` object becomes one row with its interval, and a
`X_noise_floor` / `X_corrected` sibling is put in the row of `X`, so that an S is never read
without what sampling noise alone would give.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flipbench.metric_models import KindMetrics

__all__ = ["MAX_ROWS", "MetricRow", "metric_rows"]

#: Beyond this many rows the table stops and says where the rest is (`show --format json`).
MAX_ROWS = 400
#: Lists of plain numbers longer than this are cut in one cell.
_LIST_CELL = 12
_SIBLINGS = ("_noise_floor", "_corrected")


@dataclass(frozen=True)
class MetricRow:
    """One number of a run's metrics, with what qualifies it (None where it has none)."""

    name: str
    value: Any
    low: float | None = None
    high: float | None = None
    noise_floor: float | None = None
    corrected: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def metric_rows(metrics: KindMetrics | None) -> tuple[list[MetricRow], int]:
    """The rows (at most `MAX_ROWS`) and how many more there were."""
    if metrics is None:
        return [], 0
    rows: list[MetricRow] = []
    left = 0
    for row in _walk(metrics.to_json(), ""):
        if len(rows) < MAX_ROWS:
            rows.append(row)
        else:
            left += 1
    return rows, left


def _is_estimate(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"value", "low", "high"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _walk(value: Any, path: str) -> Iterator[MetricRow]:
    if _is_estimate(value):
        yield MetricRow(path, value["value"], _number(value["low"]), _number(value["high"]))
    elif isinstance(value, dict):
        yield from _walk_object(value, path)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            shown = ", ".join(_cell(v) for v in value[:_LIST_CELL])
            more = f", … ({len(value)} in all)" if len(value) > _LIST_CELL else ""
            yield MetricRow(path, f"[{shown}{more}]")
        else:
            for i, item in enumerate(value):
                yield from _walk(item, f"{path}[{i}]")
    else:
        yield MetricRow(path, value)


def _walk_object(value: dict[str, Any], path: str) -> Iterator[MetricRow]:
    """Keys in order; a key's noise floor and corrected value join its own row."""
    siblings = {f"{key}{suffix}" for key in value for suffix in _SIBLINGS}
    for key, item in value.items():
        if key in siblings:
            continue
        name = f"{path}.{key}" if path else key
        rows = list(_walk(item, name))
        if len(rows) == 1 and rows[0].name == name:
            rows[0] = MetricRow(
                name, rows[0].value, rows[0].low, rows[0].high,
                _number(value.get(f"{key}_noise_floor")), _number(value.get(f"{key}_corrected")),
            )  # fmt: skip
        yield from rows


def _cell(value: Any) -> str:
    number = _number(value)
    if number is not None and not isinstance(value, int):
        return f"{number:.4g}"
    return "—" if value is None else str(value)
