"""Import the released raw data of "Failure to Mix" (Yang & Zhang, arXiv 2511.14630) as runs.

One run per (figure/experiment, model), status "complete", mode "sample", model
`paper/<model>`, run id `ftm-<figure>-<model>`; one samples row per imported CSV row, in file
order, with the source file and line in its meta. The known defects of the release are handled
row by row and counted in the `ImportReport` (see `ftm_rows` for how a row is read).

Importing twice refuses (FlipbenchError) and writes nothing: the journal cannot delete runs, and
adding the rows again would double every N. Import into a fresh journal instead.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flipbench import __version__
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from flipbench.importers.base import (
    CsvFile,
    ImportReport,
    PlannedRun,
    Reading,
    RunImport,
    read_csv,
    write_runs,
)
from flipbench.importers.ftm_rows import (
    Item,
    Reader,
    read_bioinformatics,
    read_business,
    read_flips,
    read_pennies,
    read_single,
    read_ternary,
    read_word,
)
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ConditionSpec, ResolvedExperiment
from flipbench.tasks.words import PAIRS

ARXIV = "2511.14630"
LICENCE = "MIT"
SOURCE = "Failure to Mix (Yang & Zhang), code and data release"
#: A condition with fewer rows than this is a stray call, not a measurement (the release's
#: real conditions hold 28 to 1000 rows).
MIN_CONDITION_ROWS = 10

_DIGITS = {f"digit_{j}" for j in range(1, 11)}
_GROUP_ORDER = {f"{r}/{o}": i for i, (r, o) in enumerate(PAIRS)}


@dataclass(frozen=True)
class Figure:
    """One figure's files, the experiment they feed, and how a row is read."""

    label: str  # in run ids: ftm-<label>-<model>
    experiment: str
    files: tuple[str, ...]
    columns: frozenset[str]
    read: Reader
    d: int | None = None
    grid: str | None = None  # our named grid, used when the data's conditions are exactly it


FIGURES = (
    Figure("fig1", "single-flip", ("fig1_single_flip.csv",),
           frozenset({"model", "p", "answer"}), read_single),
    Figure("fig2", "d-flips", ("fig2_sequential_flips.csv",),
           frozenset({"model", "p", "raw_text", "flip_1", "flip_2"}), read_flips(2, "flip_"), d=2),
    Figure("fig3", "d-flips", ("fig3_d10_flips.csv", "fig3_d10_flips_claude.csv"),
           frozenset({"model", "p", "raw_text", *_DIGITS}), read_flips(10, "digit_"), d=10,
           grid="fig3"),
    Figure("fig4", "ternary", ("fig4_ternary.csv",),
           frozenset({"model", "p", "prompt", "answer"}), read_ternary),
    Figure("fig5", "word-bias", ("fig5_word_bias.csv",),
           frozenset({"model", "p", "v", "v2", "raw_text", "answer"}), read_word),
    Figure("fig6-bioinformatics", "bioinformatics", ("fig6_bioinformatics.csv",),
           frozenset({"model", "optimal_p", "b_count", "answer"}), read_bioinformatics),
    Figure("fig6-matching-pennies", "matching-pennies", ("fig6_matching_pennies.csv",),
           frozenset({"model", "optimal_p", "payoff_ratio", "answer"}), read_pennies),
    # Two releases of the business game, each its own run: merged, the 6- and 7-point grids
    # (different sessions) made one zig-zag curve. The benchmark's 7-point grid is the extended.
    Figure("fig6-business", "business", ("fig6_business.csv",),
           frozenset({"model", "optimal_p", "affordable_payoff", "answer"}), read_business),
    Figure("fig6-business-extended", "business", ("fig6_business_extended.csv",),
           frozenset({"model", "optimal_p", "affordable_payoff", "answer"}), read_business),
)  # fmt: skip

EXPECTED_FILES = tuple(name for fig in FIGURES for name in fig.files)


def import_failure_to_mix(directory: Path, db: Path) -> ImportReport:
    """Load the released CSVs in `directory` into the journal `db`, one run per figure and model.

    Everything is read and checked before anything is written. Raises FlipbenchError for a
    missing directory or file, a file without the expected columns, or runs already imported.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FlipbenchError(f"{directory} is not a directory (expected the Failure to Mix data)")
    missing = [name for name in EXPECTED_FILES if not (directory / name).is_file()]
    if missing:
        raise FlipbenchError(
            f"{directory} lacks {len(missing)} of the {len(EXPECTED_FILES)} Failure to Mix files:"
            f" {', '.join(missing)}"
        )
    report = ImportReport(directory, Path(db), [])
    planned: list[PlannedRun] = []
    for fig in FIGURES:
        files = [read_csv(directory / name, set(fig.columns)) for name in fig.files]
        for f in files:
            if f.unnamed_columns:
                stray = sum(1 for r in f.rows if r.stray)
                report.notes.append(
                    f"{f.name}: {f.unnamed_columns} unnamed trailing column(s) ignored"
                    f" ({f'{stray} rows had values there' if stray else 'all empty'})"
                )
        for plan in _plan_figure(fig, files, report):
            planned.append(plan)
            report.runs.append(plan.stats)
    write_runs(Path(db), planned)
    return report


def _slug(model: str) -> str:
    name = model.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "unknown"


def _items(fig: Figure, files: list[CsvFile], report: ImportReport) -> dict[str, list[Item]]:
    """Every row read, grouped by model in order of appearance (drops keep a reason)."""
    by_model: dict[str, list[Item]] = {}
    for f in files:
        for row in f.rows:
            model = row.cells["model"].strip()
            if not model:
                report.notes.append(f"{f.name} line {row.line}: no model; row dropped")
                continue
            item = Item(f.name, row, model)
            try:
                fig.read(item)
            except FlipbenchError as exc:
                item.drop = f"unusable condition: {exc}"
            if row.stray:
                item.flags.append("values in unnamed columns ignored")
            if row.cells.get("status", "success") not in ("success", ""):
                item.flags.append(f"status {row.cells['status']!r} in the release (kept)")
            by_model.setdefault(model, []).append(item)
    return by_model


def _drop_strays(items: list[Item]) -> None:
    counts = Counter(i.key for i in items if i.drop is None)
    for item in items:
        n = counts[item.key]
        if item.drop is None and n < MIN_CONDITION_ROWS:
            why = "; ".join(item.flags)
            item.drop = (
                f"stray condition {item.key}: {n} row(s), fewer than {MIN_CONDITION_ROWS}"
                + (f" ({why})" if why else "")
            )


def _order(spec: ConditionSpec) -> tuple[int, bool, float]:
    """Word pairs in our pair order (forward first), everything else by x."""
    return _GROUP_ORDER.get(spec.group or "", 0), spec.value.startswith("reverse"), spec.x


def _resolve(fig: Figure, specs: list[ConditionSpec], n: int) -> ResolvedExperiment:
    """Our definition with exactly the conditions the data holds (grid "paper")."""
    definition = get_experiment(fig.experiment)
    keys = [s.key for s in specs]
    if fig.grid is not None and [s.key for s in definition.grids[fig.grid]] == keys:
        return definition.resolve(grid=fig.grid, n=n, d=fig.d)
    base = definition.resolve(n=n, d=fig.d)
    return base.model_copy(update={"specs": tuple(specs), "grid": "paper"})


def _plan_figure(fig: Figure, files: list[CsvFile], report: ImportReport) -> list[PlannedRun]:
    plans = []
    for model, items in _items(fig, files, report).items():
        _drop_strays(items)
        run_id = f"ftm-{fig.label}-{_slug(model)}"
        sources = tuple(f.name for f in files if any(i.file == f.name for i in items))
        stats = RunImport(run_id, fig.experiment, f"paper/{_slug(model)}", sources)
        specs: dict[str, ConditionSpec] = {}
        kept = []
        for item in items:
            stats.rows_read += 1
            if (
                item.drop is None
                and item.spec is not None
                and specs.setdefault(item.key, item.spec) != item.spec
            ):
                item.drop = f"row's prompt fields differ from earlier rows of {item.key}"
            if item.drop is not None or item.spec is None:
                stats.dropped[item.drop or "no condition"] += 1
                continue
            kept.append(item)
        if not kept:
            report.notes.append(f"{run_id}: no usable rows; no run created")
            continue
        n = max(Counter(i.key for i in kept).values())
        experiment = _resolve(fig, sorted(specs.values(), key=_order), n)
        experiment.conditions()  # every prompt must render before anything is written
        readings = [_reading(item, stats) for item in kept]
        stats.conditions = len(experiment.specs)
        files_used = [f for f in files if f.name in sources]
        plans.append(_plan(fig, model, stats, experiment, files_used, readings))
    return plans


def _reading(item: Item, stats: RunImport) -> Reading:
    stats.repaired.update(item.repairs)
    stats.flagged.update(item.flags)
    if item.answer is not None:
        stats.valid += 1
    else:
        stats.invalid += 1
        stats.invalid_by_category[item.category or "unparseable"] += 1
    released = {
        k: v for k, v in item.row.cells.items() if k not in ("raw_text", "prompt") and v != ""
    }
    meta: dict[str, Any] = {
        "source": item.file,
        "line": item.row.line,
        "imported": "failure-to-mix",
        "released": released,
        **item.extra,
    }
    if item.repairs:
        meta["repairs"] = item.repairs
    if item.flags:
        meta["notes"] = item.flags
    category = None if item.answer is not None else (item.category or "unparseable")
    return Reading(item.key, item.answer, category, item.content, meta, item.prompt)


def _plan(
    fig: Figure,
    model: str,
    stats: RunImport,
    experiment: ResolvedExperiment,
    files: list[CsvFile],
    readings: list[Reading],
) -> PlannedRun:
    """The run's settings and provenance: where every row came from, and what was done."""
    builder = get_experiment(fig.experiment).builder is not None
    custom = experiment.grid == "paper" and builder
    config = RunConfig(
        experiment=fig.experiment, model=stats.model, mode="sample", n=experiment.n,
        grid=None if custom else experiment.grid,
        p_values=[s.value for s in experiment.specs] if custom else None,
        d=fig.d, run_id=stats.run_id,
    )  # fmt: skip
    released_prompt = any(r.prompt is not None for r in readings)
    imported = {
        "from": SOURCE, "arxiv": ARXIV, "licence": LICENCE, "figure": fig.label,
        "files": [{"name": f.name, "sha256": f.sha256} for f in files],
        "source_model": model, "importer": __name__,
        "prompts": "released, in each sample's request" if released_prompt else
        "not released: each sample's request holds our rendering of its condition",
        "settings": "the paper's temperature and max_tokens are not released; the definition"
        " shows ours",
        "rows_read": stats.rows_read, "valid": stats.valid, "invalid": stats.invalid,
        "repaired": dict(stats.repaired), "dropped": dict(stats.dropped),
        "noted": dict(stats.flagged),
    }  # fmt: skip
    versions = {
        "flipbench": __version__,
        "model": {"id": model, "source": SOURCE},
        "imported": imported,
    }
    message = (
        f"imported from Failure to Mix (arXiv {ARXIV}, {LICENCE} licence),"
        f" {', '.join(stats.sources)}: {stats.rows_read} rows, {stats.valid} valid,"
        f" {stats.invalid} invalid, {stats.repaired.total()} repaired,"
        f" {stats.dropped.total()} dropped"
    )
    return PlannedRun(
        stats, experiment, config.model_dump(mode="json"), versions, message, readings
    )
