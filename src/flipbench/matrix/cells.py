"""What a matrix is: its options, its cells, and its plan.

A matrix asks every experiment of a list with every intervention of a list of every model of
a list: one ordinary run per cell (journaled sample by sample, resumable, readable by `show`,
`export` and `report`). `direct` is always one of the interventions, first, because every
other one is measured against it. The options are one `RunConfig` (the settings every cell
shares) and the three lists; each cell's run config is that one with its experiment, model,
intervention and planned run id filled in.

A matrix is stored in the sweep tables (`flipbench.sweep.journal`): a sweep is the matrix of
one experiment and one intervention over many models, and both are many runs resumed as one
unit. Its `experiment` column reads `matrix`, its cells are the rows of `sweep_models`, each
named by its label (`experiment · intervention · model`), and the options hold the cells.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flipbench.config import RunConfig
from flipbench.sweep.journal import MATRIX_KIND

__all__ = ["BASELINE", "MATRIX_KIND", "Cell", "MatrixOptions", "cell_run_id", "new_matrix_id"]
#: The baseline every other intervention is measured against.
BASELINE = "direct"


class Cell(BaseModel):
    """One run of a matrix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: str
    intervention: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.experiment} · {self.intervention} · {self.model}"


def _unique(values: list[str], what: str) -> list[str]:
    cleaned = [v.strip() for v in values]
    if not cleaned or any(not v for v in cleaned):
        raise ValueError(f"name at least one {what} (and no empty one)")
    return list(dict.fromkeys(cleaned))


class MatrixOptions(BaseModel):
    """A matrix: the lists it crosses and the settings every cell's run shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiments: list[str] = Field(max_length=64)
    interventions: list[str] = Field(default=[BASELINE], max_length=32)
    models: list[str] = Field(max_length=256)
    # Everything else a run takes (N, grid, mode, budget per run is replaced by the matrix's).
    run: RunConfig = RunConfig()
    max_cost: float | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)

    @field_validator("experiments", "models")
    @classmethod
    def _named(cls, values: list[str]) -> list[str]:
        return _unique(values, "experiment and model")

    @field_validator("interventions")
    @classmethod
    def _baseline_first(cls, values: list[str]) -> list[str]:
        named = _unique(values or [BASELINE], "intervention")
        return [BASELINE, *(v for v in named if v != BASELINE)]

    def cells(self) -> list[Cell]:
        """Every cell, experiment by experiment, model by model, `direct` first."""
        return [
            Cell(experiment=e, intervention=i, model=m)
            for e in self.experiments
            for m in self.models
            for i in self.interventions
        ]

    def run_config(self, cell: Cell, run_id: str, max_cost: float | None) -> RunConfig:
        """The cell's run: the shared settings with its experiment, model and intervention."""
        return self.run.model_copy(
            update={
                "experiment": cell.experiment, "model": cell.model,
                "intervention": cell.intervention, "run_id": run_id, "max_cost": max_cost,
            }
        )  # fmt: skip


def new_matrix_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"matrix-{stamp}-{secrets.token_hex(2)}"


def cell_run_id(matrix_id: str, position: int) -> str:
    return f"{matrix_id}-{position:03d}"
