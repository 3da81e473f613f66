"""How a run's results are printed: the table, CSV or JSON of `show`, and the end of a run."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.table import Table

from flipbench.cli.common import out, plain
from flipbench.safety import clean_json, csv_cell, mask_secrets

if TYPE_CHECKING:  # results (numpy, the statistics) load when a command has some to print
    from flipbench.api import RunOutcome
    from flipbench.results import RunResults


def number_text(x: float | None, digits: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def bounds_text(low: float, high: float) -> str:
    """A censored rate (only bounded): `≤0.032`, `≥0.968`, `0.400–0.600` or `0–1`, marked `*`."""
    if low <= 0 and high >= 1:
        return "0–1*"
    if low <= 0:
        return f"≤{high:.3f}*"
    if high >= 1:
        return f"≥{low:.3f}*"
    return f"{low:.3f}–{high:.3f}*"


def _rows(results: RunResults) -> list[dict[str, Any]]:
    exact = results.run.mode == "exact"
    rows = []
    for c in results.conditions:
        row: dict[str, Any] = {
            "condition": c.condition,
            "p": c.p,
            "rate": c.rate,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "n_valid": c.n_valid,
            "n_total": c.n_total,
            "invalid_share": c.invalid_share,
        }
        if exact:
            row["coverage"] = c.coverage
            row["censored"] = c.censored
        rows.append(row)
    return rows


#: `show --format` values: the table, every number as JSON, one CSV row per condition, and the
#: run's summary values (S, its interval, noise floor, grid coverage …) as CSV of their own.
SHOW_FORMATS = ("table", "json", "csv", "summary-csv")


def print_results(results: RunResults, fmt: str = "table") -> None:
    """Per condition p, rate, interval, counts (and coverage in exact mode); then S."""
    if fmt == "json":  # stored strings masked; json.dumps escapes every control character
        print(json.dumps(clean_json(results.to_dict()), indent=2, allow_nan=False))
        return
    rows = _rows(results)
    lo, hi = results.s_ci
    if fmt in ("csv", "summary-csv"):
        # One table per file: per-condition rows only, or the summary values only, so that
        # neither a spreadsheet nor pandas reads an S row as a condition.
        if fmt == "csv":
            exact = results.run.mode == "exact"
            fields = [*CSV_FIELDS, *(["coverage", "censored"] if exact else [])]
        else:
            fields, rows = SUMMARY_FIELDS, summary_rows(results)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:  # text cells cannot start a spreadsheet formula
            writer.writerow({k: csv_cell(mask_secrets(v) if isinstance(v, str) else v)
                             for k, v in row.items()})  # fmt: skip
        print(buffer.getvalue(), end="")
        return
    run = results.run
    intervention = results.experiment.intervention
    asked = "" if intervention is None else f"  +{intervention.name}"
    table = Table(
        title=plain(
            f"{run.run_id}  {run.experiment}{asked}  {run.model}  {run.mode}"
            f"  [{run.display_status}]"
        )
    )
    experiment = results.experiment
    label = "p %" if experiment.builder_kind == "flip" else "condition"
    from flipbench.kinds import get_kind

    rate = get_kind(experiment.kind).rate_label(experiment)
    for name in (label, rate, "ci_low", "ci_high", "n_valid", "n_total", "invalid"):
        table.add_column(plain(name), justify="right")
    if run.mode == "exact":
        table.add_column("coverage", justify="right")
    for c, row in zip(results.conditions, rows, strict=True):
        invalid = ", ".join(f"{k} {v}" for k, v in sorted(c.invalid.items())) or "0"
        name = c.value if label == "p %" else c.condition
        rate_cell = bounds_text(c.ci_low, c.ci_high) if c.censored else number_text(c.rate)
        cells = [name, rate_cell, number_text(c.ci_low), number_text(c.ci_high),
                 str(c.n_valid), str(c.n_total), invalid]  # fmt: skip
        if "coverage" in row:
            cells.append(number_text(c.coverage, 4))
        table.add_row(*map(plain, cells))
    out.print(table)
    interval = "" if run.mode == "exact" or math.isnan(lo) else f"  95% CI [{lo:.3f}, {hi:.3f}]"
    if not math.isnan(results.s):
        out.print(f"S = {number_text(results.s)}{partial_text(results)}{interval}"
                  f"{_noise_text(results)}")  # fmt: skip
    if results.partial:
        out.print(plain(f"partial: the run is {run.display_status};"
                        f" {results.grid_coverage.text()}"))  # fmt: skip
    if results.mostly_extrapolated:
        out.print(extrapolation_note(results))
    for line in results.lines:
        out.print(plain(line))
    cost = cost_line(results)
    if cost:
        out.print(cost)
    if run.message:
        out.print(plain(f"note: {run.message}"))


def partial_text(results: RunResults) -> str:
    """Beside S of a run that did not complete: it is partial, and how much of the grid it
    stands on (an interrupted run's S from 6 of 21 conditions is not the run's S)."""
    if not results.partial:
        return ""
    return f" (partial: {results.grid_coverage.grid_share:.0%} of the grid)"


def extrapolation_note(results: RunResults) -> str:
    """The warning for an S that is mostly r held flat beyond the answered conditions."""
    xs = [c.p for c in results.conditions if c.n_valid > 0]
    return (
        f"note: S holds r flat over {results.s_extrapolated_share:.0%} of [0, 1] (conditions"
        f" only at {min(xs):.0%}–{max(xs):.0%}): compare it only with S on the same grid"
    )


def _noise_text(results: RunResults) -> str:
    """What noise alone gives S here: the noise floor, and S corrected for its bias."""
    floor, corrected = results.s_noise_floor, results.s_corrected
    if math.isnan(floor):
        return ""
    if results.run.mode == "exact":
        return f"  (exact: no sampling noise; noise floor at this grid: {floor:.3f})"
    text = f"  (noise floor at this N and grid: {floor:.3f}"
    if not math.isnan(corrected):
        text += f"; noise-corrected S = {corrected:.3f}"
    return text + ")"


CSV_FIELDS = ["condition", "p", "rate", "ci_low", "ci_high", "n_valid", "n_total", "invalid_share"]
SUMMARY_FIELDS = ["run_id", "name", "value", "ci_low", "ci_high"]


def summary_rows(results: RunResults) -> list[dict[str, Any]]:
    """`show --format summary-csv`: one row per run-level value (long format, so that the
    summaries of runs of different experiments concatenate into one file): S with its interval,
    the noise floor, the grid coverage, and the kind's own top-level numbers (S0, d, KS …)."""
    data = results.to_dict()
    run_id = results.run.run_id

    def row(name: str, value: Any, low: Any = None, high: Any = None) -> dict[str, Any]:
        return {"run_id": run_id, "name": name, "value": value, "ci_low": low, "ci_high": high}

    s = data["S"]
    rows = [
        row("status", data["status"]),
        row("S", s["value"], s["low"], s["high"]),
        row("S_partial", data["S_partial"]),
        *(row(key, data[key]) for key in SUMMARY_KEYS),
        *(row(f"grid_coverage.{k}", v) for k, v in data["grid_coverage"].items()),
    ]
    for name, value in _summary_values(data["metrics"] or {}, "metrics"):
        if isinstance(value, dict):
            rows.append(row(name, value["value"], value["low"], value["high"]))
        else:
            rows.append(row(name, value))
    return rows


def _summary_values(data: dict[str, Any], prefix: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """The kind's run-level numbers, dotted (`metrics.bias.avg_pos_bias`): estimates (value,
    low, high) and plain numbers or words. Per-condition blocks (`per_q`, `per_condition` …)
    and lists belong to the per-condition table, not here."""
    for key, value in data.items():
        name = f"{prefix}.{key}"
        estimate = isinstance(value, dict) and {"value", "low", "high"} <= set(value)
        if estimate or (isinstance(value, int | float | str) and not isinstance(value, bool)):
            yield name, value
        elif isinstance(value, dict) and not key.startswith("per_") and depth < 3:
            yield from _summary_values(value, name, depth + 1)


SUMMARY_KEYS = (
    "S_noise_floor", "S_corrected", "S_interval_method", "S_extrapolated_share",
    "censored_conditions", "cost_usd", "cost_is_lower_bound",
)  # fmt: skip


def cost_line(results: RunResults) -> str | None:
    """What the run's replies cost. Replies that reported an unusable cost (negative, infinite,
    NaN, unreadable, above $1M) are said so; when some of them could not be counted at all, the
    total is a lower bound and shows as `≥ $…`. Never a negative amount."""
    from flipbench.results import MAX_REPLY_COST

    if results.cost_usd is None and not results.cost_unusable and not results.lost_calls:
        return None
    k, uncounted = results.cost_unusable, results.cost_uncounted
    line = f"cost: {'≥ ' if uncounted else ''}${max(results.cost_usd or 0.0, 0.0):,.4f}"
    line += f" over {results.n_requests:,} requests"
    if results.lost_calls:
        line += (
            f", plus {results.lost_calls:,} paid call(s) lost in flight when a process died"
            f" (counted at ${results.lost_cost_usd:,.4f})"
        )
    if not k:
        return line
    line += (
        f" ({k:,} repl{'y' if k == 1 else 'ies'} reported an unusable cost: negative, infinite,"
        f" NaN, unreadable or above ${MAX_REPLY_COST:,.0f};"
    )
    if uncounted:
        return line + f" {uncounted:,} of them not counted)"
    return line + " counted as $0 or as estimated)"


def report_outcome(outcome: RunOutcome, *, figures: bool = True) -> None:
    if outcome.results is not None:
        print_results(outcome.results)
    for path in outcome.figures if figures else []:
        out.print(plain(f"figure: {path}"))
    if outcome.retries:
        retries = ", ".join(f"{k} {v}" for k, v in sorted(outcome.retries.items()))
        out.print(plain(f"retries: {retries}"))
    if outcome.status != "complete":
        out.print(plain(f"run {outcome.run_id} is {outcome.status}: {outcome.message or ''}"))
