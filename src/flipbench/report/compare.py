"""Runs of one experiment side by side: are they comparable, how do they differ, one table.

Two runs are comparable when they asked the same question and read the answers the same way:
their definitions (`ResolvedExperiment`) agree on everything that shapes a request or its
scoring. Where they do not (another prompt, temperature, D or grid of conditions), their S
values measure different things, so `compare` refuses them unless forced and names the fields.
Three fields are told but never block: N (it only changes the intervals), the grid's name
(the imported paper runs carry "paper" for the same conditions as "default") and max_tokens
(API backends raise it for reasoning models; a reply cut short shows as invalid). The mode is
the run's, not the definition's: an exact run beside sampled ones is the point of a comparison.

The overlay figures are the kinds' own (`run_figures.overlay_figures`), never redrawn here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.estimate import strict_json
from flipbench.report.run_figures import overlay_figures, run_labels
from flipbench.results import ConditionResult, RunResults, compute_results
from flipbench.store import Journal, RunRow
from flipbench.tasks.definition import ResolvedExperiment

__all__ = [
    "Comparison",
    "Difference",
    "SideBySide",
    "check_comparable",
    "compare_runs",
    "definition_differences",
    "paper_runs_for",
    "side_by_side",
]

#: The model prefix of runs imported from the paper's released data (`importers`).
PAPER_PREFIX = "paper/"
#: Definition fields that differ without making runs incomparable (see the module's doc).
NOTED_FIELDS = frozenset({"n", "grid", "max_tokens"})
_VALUE_CHARS = 80


@dataclass(frozen=True)
class Difference:
    """One definition field on which the runs disagree: its values, with the runs of each."""

    field: str
    values: dict[str, list[str]]  # shown value -> run ids
    blocking: bool

    def line(self) -> str:
        shown = "; ".join(f"{value} ({', '.join(ids)})" for value, ids in self.values.items())
        if self.field == "specs" and not self.blocking:
            shown += " — S averages over different conditions: compare the rates, not S"
        return f"{self.field}: {shown}"


def _shown(field_name: str, value: Any) -> str:
    """A field's value in a line: conditions as their count and range, the rest as JSON."""
    if field_name == "specs" and isinstance(value, list):
        keys = [str(s.get("key", "?")) if isinstance(s, dict) else "?" for s in value]
        span = f"{keys[0]} … {keys[-1]}" if len(keys) > 1 else ", ".join(keys)
        return f"{len(keys)} conditions ({span})"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def definition_differences(results: Sequence[RunResults]) -> list[Difference]:
    """Every definition field whose value is not the same in all runs, blocking ones first.

    The grid's name differs harmlessly when the conditions are the same; conditions that
    differ are reported as `specs` (blocking).
    """
    return _differences([(r.run.run_id, r.experiment.model_dump(mode="json")) for r in results])


def _differences(dumps: Sequence[tuple[str, dict[str, Any]]]) -> list[Difference]:
    names = list(dict.fromkeys(name for _, dump in dumps for name in dump))
    found = []
    for name in names:
        groups: dict[str, list[str]] = {}
        canonical: dict[str, str] = {}
        for run_id, dump in dumps:
            key = json.dumps(dump.get(name), sort_keys=True)
            if key not in canonical:
                shown = _shown(name, dump.get(name))
                if shown in groups:  # two values that read alike: tell them apart
                    shown += f" (variant {len(canonical) + 1})"
                canonical[key] = shown
            groups.setdefault(canonical[key], []).append(run_id)
        if len(canonical) <= 1:
            continue
        if name == "specs":
            blocking = _conditions_conflict([dump.get(name) for _, dump in dumps])
        else:
            blocking = name not in NOTED_FIELDS
        found.append(Difference(name, groups, blocking))
    return sorted(found, key=lambda d: not d.blocking)


def _conditions_conflict(grids: Sequence[Any]) -> bool:
    """Whether a condition of the same key asks something else in another run. Grids that
    only hold different conditions (the paper's models were not all run on one grid) are
    compared point by point; their S, an average over the grid, is then not comparable,
    which the difference's line says."""
    seen: dict[str, str] = {}
    for grid in grids:
        for spec in grid if isinstance(grid, list) else [grid]:
            key = str(spec.get("key")) if isinstance(spec, dict) else "?"
            text = json.dumps(spec, sort_keys=True)
            if seen.setdefault(key, text) != text:
                return True
    return False


def check_comparable(results: Sequence[RunResults], *, force: bool = False) -> list[Difference]:
    """The differences between the runs' definitions; raises FlipbenchError for runs of
    different experiments (never overlaid), and for blocking differences unless `force`."""
    return _check(
        [(r.run.run_id, r.run.experiment, r.experiment.model_dump(mode="json")) for r in results],
        force,
    )


def _check(runs: Sequence[tuple[str, str, dict[str, Any]]], force: bool) -> list[Difference]:
    """`check_comparable` on (run id, experiment, definition) triples."""
    if len(runs) < 2:
        raise FlipbenchError("compare needs at least two runs")
    experiments = sorted({experiment for _, experiment, _ in runs})
    if len(experiments) > 1:
        raise FlipbenchError(
            f"runs of different experiments cannot be compared: {', '.join(experiments)}"
        )
    differences = _differences([(run_id, dump) for run_id, _, dump in runs])
    blocking = [d for d in differences if d.blocking]
    if blocking and not force:
        fields = ", ".join(d.field for d in blocking)
        detail = " | ".join(d.line() for d in blocking)
        raise FlipbenchError(
            f"the runs' definitions differ in {fields}, so their S values measure different"
            f" things: {detail} (--force compares them anyway)"
        )
    return differences


def _definition(run: RunRow) -> dict[str, Any]:
    """A journaled run's definition as the model reads it (older fields normalised)."""
    return ResolvedExperiment(**run.definition).model_dump(mode="json")


@dataclass(frozen=True)
class Cell:
    """One run at one condition."""

    rate: float
    low: float
    high: float
    n_valid: int
    n_total: int
    censored: bool

    @classmethod
    def of(cls, c: ConditionResult) -> Cell:
        return cls(c.rate, c.ci_low, c.ci_high, c.n_valid, c.n_total, c.censored)

    def text(self) -> str:
        if self.n_valid == 0 and self.n_total == 0:
            return "—"
        if math.isnan(self.rate) and not self.censored:
            return f"— (n {self.n_valid}/{self.n_total})"
        if self.censored:
            return f"{self.low:.3f}–{self.high:.3f}* (n {self.n_valid}/{self.n_total})"
        interval = "" if self.low == self.high else f" [{self.low:.3f}, {self.high:.3f}]"
        return f"{self.rate:.3f}{interval} (n {self.n_valid}/{self.n_total})"


@dataclass(frozen=True)
class SideBySide:
    """Conditions down, runs across; then each run's summary numbers."""

    labels: list[str]
    run_ids: list[str]
    conditions: list[tuple[str, str]]  # (key, shown value)
    cells: list[list[Cell | None]]  # [condition][run]
    summary: list[tuple[str, list[str]]]  # (row name, one text per run)

    def to_json(self) -> dict[str, Any]:
        """Strict JSON (undefined rates as null), for `compare --format json`."""
        runs = [{"run_id": r, "label": la} for r, la in zip(self.run_ids, self.labels, strict=True)]
        conditions = [
            {"condition": key, "value": value, "runs": [c and c.__dict__ for c in row]}
            for (key, value), row in zip(self.conditions, self.cells, strict=True)
        ]
        summary = {name: texts for name, texts in self.summary}
        view: dict[str, Any] = strict_json(
            {"runs": runs, "conditions": conditions, "summary": summary}
        )
        return view


def _number(x: float, digits: int = 3) -> str:
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def _s_text(r: RunResults) -> str:
    lo, hi = r.s_ci
    if math.isnan(r.s):
        return "—"
    if math.isnan(lo) or lo == hi:
        return _number(r.s)
    return f"{r.s:.3f} [{lo:.3f}, {hi:.3f}]"


def side_by_side(results: Sequence[RunResults]) -> SideBySide:
    """The table of `compare`: every condition any run has (in grid order, then by x)."""
    order: dict[str, tuple[float, str]] = {}
    for r in results:
        for c in r.conditions:
            order.setdefault(c.condition, (c.p, c.value or c.condition))
    keys = sorted(order, key=lambda k: order[k][0] if math.isfinite(order[k][0]) else 0.0)
    by_run = [{c.condition: c for c in r.conditions} for r in results]
    cells = [[Cell.of(runs[key]) if key in runs else None for runs in by_run] for key in keys]
    invalid = []
    for r in results:
        total = r.n_requests
        bad = sum(c.n_total - c.n_valid for c in r.conditions)
        invalid.append(f"{bad / total:.1%} ({bad}/{total})" if total else "—")
    summary = [
        ("model", [r.run.model for r in results]),
        ("mode", [r.run.mode for r in results]),
        ("status", [r.run.display_status for r in results]),
        ("N per condition", [str(r.experiment.n) for r in results]),
        ("S [95% CI]", [_s_text(r) for r in results]),
        ("S noise floor", [_number(r.s_noise_floor) for r in results]),
        ("S noise-corrected", [_number(r.s_corrected) for r in results]),
        ("invalid share", invalid),
        ("definition hash", [r.run.definition_hash for r in results]),
    ]
    return SideBySide(
        run_labels(results), [r.run.run_id for r in results],
        [(k, order[k][1]) for k in keys], cells, summary,
    )  # fmt: skip


@dataclass
class Comparison:
    """What `compare` found and drew."""

    results: list[RunResults]
    differences: list[Difference]
    table: SideBySide
    figures: list[Path] = field(default_factory=list)


def compare_runs(
    journal: Journal,
    run_ids: Sequence[str],
    out_dir: Path | None,
    stem: str,
    *,
    force: bool = False,
) -> Comparison:
    """Check the runs are comparable, build the table and (with `out_dir`) draw the overlay."""
    if len(set(run_ids)) != len(run_ids):
        raise FlipbenchError("a run is named twice")
    rows = [journal.get_run(run_id) for run_id in run_ids]  # refused before any computing
    differences = _check([(r.run_id, r.experiment, _definition(r)) for r in rows], force)
    results = [compute_results(journal, run_id) for run_id in run_ids]
    table = side_by_side(results)
    figures = overlay_figures(results, out_dir, stem) if out_dir is not None else []
    return Comparison(results, differences, table, figures)


def paper_runs_for(journal: Journal, first: RunRow) -> list[str]:
    """The imported paper runs that compare with `first`: same experiment, no blocking
    difference (for d-flips, the paper's D = 2 runs beside a D = 2 run, not its D = 10 ones).
    Raises FlipbenchError when there are none, saying how to import them."""
    found = []
    for run in journal.list_runs():
        if not run.model.startswith(PAPER_PREFIX) or run.experiment != first.experiment:
            continue
        if run.run_id == first.run_id:
            continue
        pair = [(first.run_id, _definition(first)), (run.run_id, _definition(run))]
        if not any(d.blocking for d in _differences(pair)):
            found.append(run.run_id)
    if not found:
        raise FlipbenchError(
            f"no imported paper run of {first.experiment} with the same definition in"
            f" {journal.path} (import them with `flipbench import failure-to-mix`)"
        )
    return found
