"""The matrix's table: each intervention against `direct`, per experiment and model.

Per cell: S with its interval (the experiment's own); for a benchmark experiment its part's
score out of 20 and Δscore (`matrix.scores`); ΔS = S − S(direct) with an interval
that covers (`curves.step_likeness_difference`: each side's bias-aware interval at √0.95,
differenced; measured in tests/test_matrix.py), the invalid share, and the overhead per
sample: tokens (from each reply's `usage`) and cost, also as ratios to `direct`'s. An
experiment whose kind has no S (word pairs, distributions) gets its S columns empty; its own
metrics stay in each run's `show` and report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from pydantic import BaseModel

from flipbench.curves import step_likeness_difference
from flipbench.estimate import Estimate
from flipbench.matrix.cells import BASELINE, Cell
from flipbench.matrix.scores import delta_score, part_score
from flipbench.results import RunResults, compute_results
from flipbench.store import Journal
from flipbench.sweep.journal import SweepRow

__all__ = ["CellRow", "MatrixTable", "matrix_table"]


class CellRow(BaseModel):
    """One cell of the matrix, read back."""

    experiment: str
    intervention: str
    model: str
    run_id: str
    state: str
    reason: str | None = None
    replies: int = 0
    valid: int = 0
    invalid_share: float | None = None
    s: Estimate | None = None
    delta_s: Estimate | None = None  # against `direct` of the same experiment and model
    part: str | None = None  # the benchmark part this experiment is (exp1 … exp5), if any
    score: Estimate | None = None  # that part's score out of 20 (interval at √0.95)
    delta_score: Estimate | None = None
    tokens_per_sample: float | None = None
    cost_per_sample: float | None = None
    token_ratio: float | None = None  # tokens per sample / direct's
    cost_ratio: float | None = None


class MatrixTable(BaseModel):
    """Every cell, in the matrix's order (`matrix show --format json` writes this)."""

    matrix_id: str
    status: str
    message: str | None
    spent: float
    max_cost: float | None
    rows: list[CellRow]


def _usage_tokens(response_json: str | None) -> int | None:
    """prompt + completion tokens of one reply, when it reported them."""
    if not response_json:
        return None
    try:
        usage = json.loads(response_json).get("usage")
    except (ValueError, AttributeError):
        return None
    if not isinstance(usage, dict):
        return None
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    if not all(isinstance(p, int) and p >= 0 for p in parts):
        return None
    return int(sum(parts))  # type: ignore[arg-type]


def _per_sample(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _s(r: RunResults) -> Estimate | None:
    if math.isnan(r.s):
        return None
    return Estimate(r.s, *r.s_ci)


def _delta(base: RunResults, other: RunResults) -> Estimate | None:
    """ΔS over the conditions both runs answered (None when S does not apply)."""
    if math.isnan(base.s) or math.isnan(other.s):
        return None
    exact_base, exact_other = base.run.mode == "exact", other.run.mode == "exact"
    mine = {c.condition: c for c in other.conditions}
    pairs = [
        (b, mine[b.condition]) for b in base.conditions
        if b.condition in mine and not b.censored and not mine[b.condition].censored
        and (exact_base or b.n_valid > 0) and (exact_other or mine[b.condition].n_valid > 0)
    ]  # fmt: skip
    if len(pairs) < 2:
        return None
    x = [b.p for b, _ in pairs]
    return step_likeness_difference(
        x,
        [b.rate for b, _ in pairs] if exact_base else [b.k for b, _ in pairs],
        None if exact_base else [b.n_valid for b, _ in pairs],
        [o.rate for _, o in pairs] if exact_other else [o.k for _, o in pairs],
        None if exact_other else [o.n_valid for _, o in pairs],
    )


def matrix_table(journal: Journal, row: SweepRow) -> MatrixTable:
    """Read every cell's run back; ΔS and overheads against `direct`."""
    cells = [Cell(**c) for c in row.config["cells"]]
    known = {r.run_id for r in journal.list_runs()}
    results: dict[int, RunResults] = {}
    rows: list[CellRow] = []
    spent = 0.0
    for member in row.models:
        cell = cells[member.position]
        out = CellRow(
            experiment=cell.experiment, intervention=cell.intervention, model=cell.model,
            run_id=member.run_id, state=member.state, reason=member.reason,
        )  # fmt: skip
        if member.run_id in known:
            spent += journal.spent(member.run_id)
            r = compute_results(journal, member.run_id)
            results[member.position] = r
            samples = list(journal.samples(member.run_id, ("response_json", "cost")))
            total = sum(c.n_total for c in r.conditions)
            valid = sum(c.n_valid for c in r.conditions)
            costs = [
                s["cost"] if s["cost"] is not None and s["cost"] >= 0 else None for s in samples
            ]
            tokens = [_usage_tokens(s["response_json"]) for s in samples]
            scored = part_score(r)
            out = out.model_copy(update={
                "part": scored[0] if scored else None, "score": scored[1] if scored else None,
                "replies": total, "valid": valid,
                "invalid_share": (total - valid) / total if total else None, "s": _s(r),
                "tokens_per_sample": _per_sample(tokens), "cost_per_sample": _per_sample(costs),
            })  # fmt: skip
        rows.append(out)
    _against_direct(cells, rows, results)
    return MatrixTable(
        matrix_id=row.sweep_id, status=row.status, message=row.message, spent=spent,
        max_cost=row.max_cost, rows=rows,
    )  # fmt: skip


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return value / base


def _against_direct(cells: list[Cell], rows: list[CellRow], results: dict[int, RunResults]) -> None:
    baseline = {
        (c.experiment, c.model): i for i, c in enumerate(cells) if c.intervention == BASELINE
    }
    for i, cell in enumerate(cells):
        b = baseline.get((cell.experiment, cell.model))
        if b is None or i == b or i not in results or b not in results:
            continue
        base_row, score = rows[b], rows[i].score
        rows[i] = rows[i].model_copy(update={
            "delta_s": _delta(results[b], results[i]),
            "delta_score": (
                delta_score(base_row.score, score)
                if base_row.score is not None and score is not None else None
            ),
            "token_ratio": _ratio(rows[i].tokens_per_sample, base_row.tokens_per_sample),
            "cost_ratio": _ratio(rows[i].cost_per_sample, base_row.cost_per_sample),
        })  # fmt: skip
