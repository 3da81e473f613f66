"""A matrix's section of the HTML report (`flipbench report MATRIX_ID`): the table of every
cell against `direct` and the ΔS figure, formatted into `report.matrix_view.MatrixView`."""

from __future__ import annotations

import math
import re
from pathlib import Path

from flipbench.estimate import Estimate
from flipbench.matrix.figure import delta_plot
from flipbench.matrix.table import CellRow, MatrixTable
from flipbench.report.gap import KnowledgeGap, gap_figure
from flipbench.report.matrix_view import MatrixLine, MatrixView
from flipbench.report.sections import draw

__all__ = ["matrix_view"]


def _estimate(e: Estimate | None, signed: bool = False) -> str:
    if e is None or math.isnan(e.value):
        return "—"
    f = "+.3f" if signed else ".3f"
    if math.isnan(e.low) or e.low == e.high:
        return format(e.value, f)
    return f"{e.value:{f}} [{e.low:{f}}, {e.high:{f}}]"


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _line(r: CellRow) -> MatrixLine:
    return MatrixLine(
        experiment=r.experiment, model=r.model, intervention=r.intervention, run_id=r.run_id,
        state=r.state, s=_estimate(r.s), delta_s=_estimate(r.delta_s, signed=True),
        score="—" if r.score is None else f"{r.part}: {_estimate(r.score)}",
        delta_score=_estimate(r.delta_score, signed=True),
        invalid=_num(r.invalid_share, ".1%"), tokens=_num(r.tokens_per_sample, ".1f"),
        token_ratio=_num(r.token_ratio, ".2f"), cost=_num(r.cost_per_sample, ".3g"),
        reason=r.reason or "",
    )  # fmt: skip


def _figures(table: MatrixTable, gaps: list[KnowledgeGap], folder: Path) -> list[Path]:
    paths = delta_plot(table, folder)
    for i, g in enumerate(gaps):
        paths += gap_figure(g, folder, f"knowledge-gap-{i + 1}")
    return paths


def matrix_view(table: MatrixTable, gaps: list[KnowledgeGap] | None = None) -> MatrixView:
    """The matrix's section: its table, the ΔS figure and the knowledge–sampling gap of each
    `verbalized` cell (`gaps`)."""
    spent = f"${table.spent:.4f}" + (
        f" of ${table.max_cost:g}" if table.max_cost is not None else ""
    )
    return MatrixView(
        matrix_id=table.matrix_id,
        anchor="matrix-" + re.sub(r"[^A-Za-z0-9_-]", "-", table.matrix_id),
        status=table.status, message=table.message, spent=spent,
        lines=[_line(r) for r in table.rows],
        figures=draw(lambda folder: _figures(table, gaps or [], folder)),
    )  # fmt: skip
