"""Per-sample tables for people's own analysis: one row per journaled request.

CSV is for spreadsheets, which run a cell starting with `=`, `+`, `-`, `@`, tab or CR as a
formula: every text cell goes through `safety.csv_cell` (OWASP's rule: such a cell gets a
leading `'`; control characters become visible escapes; a plain number such as "-3" is left
as it is). Numeric and boolean columns are untouched. Parquet is typed data for programs, not
spreadsheets: its text columns hold exactly what the journal holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd

from flipbench.errors import FlipbenchError
from flipbench.safety import csv_cell
from flipbench.store import Journal
from flipbench.tasks.definition import ResolvedExperiment

ExportFormat = Literal["csv", "parquet"]
COLUMNS = [
    "run_id", "experiment", "model", "mode", "condition", "p", "sample_index", "answer", "valid",
    "status", "invalid_category", "finish_reason", "content", "prob_first", "coverage",
    "latency_s", "created_at",
]  # fmt: skip


def samples_frame(journal: Journal, run_id: str) -> pd.DataFrame:
    """The run's rows with the requested p attached; exact rows carry the probability of `first`."""
    run = journal.get_run(run_id)
    experiment = ResolvedExperiment(**run.definition)
    p_of = {c.key: c.p for c in experiment.conditions()}
    records = []
    for row in journal.samples(run_id):
        probs = json.loads(row["probs_json"]) if row["probs_json"] else None
        records.append(
            {
                "run_id": run_id,
                "experiment": run.experiment,
                "model": run.model,
                "mode": run.mode,
                "condition": row["condition"],
                "p": p_of.get(row["condition"]),
                "sample_index": row["sample_index"],
                "answer": row["answer"],
                "valid": bool(row["valid"]),
                "status": row["status"],
                "invalid_category": row["invalid_category"],
                "finish_reason": row["finish_reason"],
                "content": row["content"],
                "prob_first": probs.get(experiment.first) if probs else None,
                "coverage": row["coverage"],
                "latency_s": row["latency_s"],
                "created_at": row["created_at"],
            }
        )
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell neutralised for spreadsheets (see the module docstring)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(csv_cell, na_action="ignore")
    return safe


def export_run(journal: Journal, run_id: str, fmt: str, path: Path) -> Path:
    """Write the per-sample table as CSV or Parquet."""
    if fmt not in ("csv", "parquet"):
        raise FlipbenchError(f"unknown export format {fmt!r} (use csv or parquet)")
    if path.is_dir():
        raise FlipbenchError(f"{path} is a directory; give a file name to export to")
    frame = samples_frame(journal, run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            csv_safe(frame).to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    except OSError as exc:
        raise FlipbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
