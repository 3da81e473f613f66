"""What is known about each model of a sweep: the covariates its regression is fitted on.

Two sources, because neither has everything. The provider catalogue (each entry as stored with
the sweep) gives the organisation (the slug's author), the context length, the prices, whether
the model takes a reasoning parameter, and its creation date. Parameter counts and dense vs
mixture-of-experts are not in any catalogue; they come from a covariates file (CSV). A starter
file ships with flipbench (`flipbench/data/covariates.csv`: well-known open-weight models, each
row citing its source); a user's file (`--covariates FILE`) is read first, so its rows override
and extend the starter's. The seed asked another LLM to fill these in; that is not reproducible,
so here every value is either from the catalogue or from a row a person can check.

The file: a header row, then one row per model or glob of model ids (`fnmatch`, case-insensitive,
matched against `author/slug` with any `:variant` removed). Columns: `pattern` (required),
`params_b` (total parameters, billions), `active_params_b` (active per token, for MoE),
`architecture` (`dense` or `moe`) and `source` (where the numbers come from). Empty cells are
unknown. For each field the first matching row with a value wins (the user's rows first, each
file top to bottom). Anything malformed is refused with its file and line, so a typo cannot
silently drop a covariate.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import io
import math
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flipbench.errors import FlipbenchError

COLUMNS = ("pattern", "params_b", "active_params_b", "architecture", "source")
ARCHITECTURES = ("dense", "moe")
#: `supported_parameters` entries that mean the model can reason before answering.
REASONING_PARAMETERS = frozenset({"reasoning", "include_reasoning"})


class CovariateRow(BaseModel):
    """One row of a covariates file."""

    pattern: str
    params_b: float | None = None
    active_params_b: float | None = None
    architecture: str | None = None
    source: str | None = None
    origin: str  # file:line, so that a value can be traced back


class ModelCovariates(BaseModel):
    """Everything known about one model (None: unknown)."""

    model: str
    organisation: str
    context_length: int | None = None
    prompt_price: float | None = None  # USD per million tokens
    completion_price: float | None = None
    reasoning: bool | None = None
    created_year: float | None = None  # e.g. 2024.5
    params_b: float | None = None
    active_params_b: float | None = None
    moe: bool | None = None
    sources: list[str] = []


def _number(text: str, where: str, column: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise FlipbenchError(f"{where}: {column} must be a number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise FlipbenchError(f"{where}: {column} must be a positive number, not {text!r}")
    return value


def parse_covariates(text: str, name: str) -> list[CovariateRow]:
    """The rows of a covariates CSV (`name` labels errors); FlipbenchError on anything odd."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise FlipbenchError(f"{name}: empty covariates file (want a header row)") from None
    except csv.Error as exc:
        raise FlipbenchError(f"{name}: not a CSV file ({exc})") from None
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or "pattern" not in header or len(set(header)) != len(header):
        raise FlipbenchError(
            f"{name}:1: the header must name `pattern` and only these columns, once each:"
            f" {', '.join(COLUMNS)} (got {', '.join(header) or 'nothing'})"
        )
    rows = []
    try:
        for cells in reader:
            where = f"{name}:{reader.line_num}"
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if len(cells) != len(header):
                raise FlipbenchError(f"{where}: {len(cells)} cells, the header has {len(header)}")
            row = dict(zip(header, (c.strip() for c in cells), strict=True))
            rows.append(_row(row, where))
    except csv.Error as exc:
        raise FlipbenchError(f"{name}:{reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _row(row: dict[str, str], where: str) -> CovariateRow:
    pattern = row["pattern"].lower()
    if not pattern or pattern.count("/") != 1:
        raise FlipbenchError(f"{where}: pattern must look like author/slug (globs allowed)")
    arch = row.get("architecture", "").lower() or None
    if arch is not None and arch not in ARCHITECTURES:
        raise FlipbenchError(f"{where}: architecture must be dense or moe, not {arch!r}")
    total = _number(row.get("params_b", ""), where, "params_b")
    active = _number(row.get("active_params_b", ""), where, "active_params_b")
    if total is not None and active is not None and active > total:
        raise FlipbenchError(f"{where}: active_params_b ({active:g}) exceeds params_b ({total:g})")
    return CovariateRow(
        pattern=pattern, params_b=total, active_params_b=active, architecture=arch,
        source=row.get("source") or None, origin=where,
    )  # fmt: skip


def starter_rows() -> list[CovariateRow]:
    """The covariates file shipped with flipbench."""
    text = resources.files("flipbench").joinpath("data/covariates.csv").read_text("utf-8")
    return parse_covariates(text, "flipbench/data/covariates.csv")


def load_rows(user_file: Path | None = None) -> list[CovariateRow]:
    """The user's rows (if any) before the starter's: theirs override and extend it."""
    rows: list[CovariateRow] = []
    if user_file is not None:
        try:
            text = user_file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FlipbenchError(f"cannot read covariates file {user_file}: {exc}") from None
        rows = parse_covariates(text, str(user_file))
    return rows + starter_rows()


def _price(pricing: Any, key: str) -> float | None:
    """A catalogue price (USD per token, as a string) in USD per million tokens."""
    try:
        value = float(pricing[key]) * 1e6
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _year(created: Any) -> float | None:
    """A unix timestamp as a fractional year (2024.5 is mid-2024)."""
    if not isinstance(created, int | float) or isinstance(created, bool) or created <= 0:
        return None
    try:
        when = dt.datetime.fromtimestamp(float(created), dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    start = dt.datetime(when.year, 1, 1, tzinfo=dt.UTC)
    return when.year + (when - start).total_seconds() / (365.25 * 86400)


def covariates_of(model: str, entry: dict[str, Any], rows: list[CovariateRow]) -> ModelCovariates:
    """One model's covariates from its catalogue entry and the covariates rows."""
    params = entry.get("supported_parameters")
    context = entry.get("context_length")
    pricing = entry.get("pricing")
    known: dict[str, Any] = {
        "context_length": context if isinstance(context, int) and context > 0 else None,
        "prompt_price": _price(pricing, "prompt"),
        "completion_price": _price(pricing, "completion"),
        "reasoning": bool(REASONING_PARAMETERS & set(params)) if isinstance(params, list) else None,
        "created_year": _year(entry.get("created")),
    }
    name = model.split(":", 1)[0].lower()
    sources: list[str] = []
    for row in rows:
        if not fnmatch.fnmatchcase(name, row.pattern):
            continue
        used = False
        for field in ("params_b", "active_params_b"):
            if known.get(field) is None and getattr(row, field) is not None:
                known[field], used = getattr(row, field), True
        if known.get("moe") is None and row.architecture is not None:
            known["moe"], used = row.architecture == "moe", True
        if used:
            sources.append(f"{row.origin}" + (f" ({row.source})" if row.source else ""))
    return ModelCovariates(
        model=model, organisation=name.split("/", 1)[0], sources=sources, **known
    )
