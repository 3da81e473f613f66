"""What the HTML report shows of a matrix: each intervention against `direct`, formatted.

Like the sweep's view, the matrix package fills it (the report layer sits below and cannot
read a matrix) and the page only prints it, through the same autoescaped template path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flipbench.report.sections import FigureImage

__all__ = ["MatrixLine", "MatrixView"]


@dataclass(frozen=True)
class MatrixLine:
    """One cell of the matrix, as the table prints it."""

    experiment: str
    model: str
    intervention: str
    run_id: str
    state: str
    s: str
    delta_s: str
    score: str  # the benchmark part's score out of 20, when the experiment is one
    delta_score: str
    invalid: str
    tokens: str
    token_ratio: str
    cost: str
    reason: str


@dataclass
class MatrixView:
    """A matrix's section of the report."""

    matrix_id: str
    anchor: str
    status: str
    message: str | None
    spent: str
    lines: list[MatrixLine]
    figures: list[FigureImage] = field(default_factory=list)
