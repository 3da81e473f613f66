"""What every importer shares: reading released CSVs with their line numbers, counting what
happened to each row, and writing planned runs to the journal.

An import parses and checks everything first and writes only then, so that a bad file never
leaves half an import behind; it refuses run ids that already exist instead of adding rows to
them (the journal has no way to delete a run, and duplicated rows would double every N).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.store import Journal, SampleRecord
from flipbench.tasks.definition import ResolvedExperiment

# pandas names blank headers " ", " .1", " .2"…: columns a spreadsheet left behind.
_UNNAMED = re.compile(r"(\.\d+)?")


@dataclass(frozen=True)
class CsvRow:
    """One record of a released CSV: the line it starts on, and its named cells."""

    line: int
    cells: dict[str, str]
    stray: tuple[str, ...] = ()  # non-empty values in unnamed or surplus columns


@dataclass(frozen=True)
class CsvFile:
    """A released file as read: its checksum travels with every run made from it."""

    name: str
    sha256: str
    rows: tuple[CsvRow, ...]
    unnamed_columns: int = 0


def read_csv(path: Path, required: set[str]) -> CsvFile:
    """Read a CSV (quoted fields may span lines), keeping each record's first line number."""
    if not path.is_file():
        raise FlipbenchError(f"missing file {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FlipbenchError(f"{path.name} is not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise FlipbenchError(f"{path.name} is empty")
    named = [(i, h.strip()) for i, h in enumerate(header) if not _UNNAMED.fullmatch(h.strip())]
    missing = required - {h for _, h in named}
    if missing:
        raise FlipbenchError(
            f"{path.name} lacks column(s) {', '.join(sorted(missing))}; "
            "is this the Failure to Mix data release?"
        )
    named_at = {i for i, _ in named}
    rows = []
    last = reader.line_num
    for values in reader:
        start, last = last + 1, reader.line_num
        if not any(v.strip() for v in values):
            continue  # a blank line is not a reply
        cells = {h: values[i] if i < len(values) else "" for i, h in named}
        stray = tuple(v for i, v in enumerate(values) if i not in named_at and v.strip())
        rows.append(CsvRow(start, cells, stray))
    digest = hashlib.sha256(data).hexdigest()
    return CsvFile(path.name, digest, tuple(rows), len(header) - len(named))


@dataclass
class RunImport:
    """What became of the rows of one imported run."""

    run_id: str
    experiment: str
    model: str
    sources: tuple[str, ...]
    rows_read: int = 0
    valid: int = 0
    invalid: int = 0
    conditions: int = 0
    invalid_by_category: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)  # fixed, then imported
    dropped: Counter[str] = field(default_factory=Counter)  # read, not imported
    flagged: Counter[str] = field(default_factory=Counter)  # imported as released, noted

    @property
    def imported(self) -> int:
        return self.valid + self.invalid

    def summary(self) -> str:
        """One line: counts and why rows were invalid."""
        cats = ", ".join(f"{k} {v}" for k, v in sorted(self.invalid_by_category.items()))
        return (
            f"{self.run_id}: {self.rows_read} rows read, {self.valid} valid, {self.invalid}"
            f" invalid{f' ({cats})' if cats else ''}, {self.repaired.total()} repaired,"
            f" {self.dropped.total()} dropped; {self.conditions} conditions"
        )


@dataclass
class ImportReport:
    """Per run: rows read, imported valid/invalid, repaired and dropped (by reason)."""

    directory: Path
    db: Path
    runs: list[RunImport]
    notes: list[str] = field(default_factory=list)  # file-level remarks (ignored columns)

    def run(self, run_id: str) -> RunImport:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    def lines(self) -> list[str]:
        """Human-readable lines: totals, then each run and every reason rows were changed."""
        read = sum(r.rows_read for r in self.runs)
        valid = sum(r.valid for r in self.runs)
        invalid = sum(r.invalid for r in self.runs)
        repaired = sum(r.repaired.total() for r in self.runs)
        dropped = sum(r.dropped.total() for r in self.runs)
        out = [
            f"imported {len(self.runs)} runs from {self.directory} into {self.db}: {read} rows"
            f" read, {valid} valid, {invalid} invalid; {repaired} repaired, {dropped} dropped"
        ]
        out.extend(self.notes)
        for r in self.runs:
            out.append(r.summary())
            out.extend(f"  repaired {n}: {why}" for why, n in r.repaired.most_common())
            out.extend(f"  dropped {n}: {why}" for why, n in r.dropped.most_common())
            out.extend(f"  noted {n}: {why}" for why, n in r.flagged.most_common())
        return out


@dataclass
class Reading:
    """One imported row: its condition, answer (or invalid category) and provenance."""

    condition: str
    answer: str | None
    category: str | None
    content: str | None
    meta: dict[str, Any]
    prompt: str | None = None  # the prompt as released, where the file has one


@dataclass
class PlannedRun:
    """A run ready to write: definition, settings, provenance and its rows in file order."""

    stats: RunImport
    experiment: ResolvedExperiment
    config: dict[str, Any]
    versions: dict[str, Any]
    message: str
    readings: list[Reading]


def write_runs(db: Path, planned: list[PlannedRun]) -> None:
    """Create each run, record its rows (sample_index 0.. per condition), mark it complete."""
    if not db.resolve().parent.is_dir():
        raise FlipbenchError(f"directory {db.resolve().parent} for the journal does not exist")
    ids = [p.stats.run_id for p in planned]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise FlipbenchError(f"two models map to the same run id: {', '.join(twice)}")
    with Journal(db) as journal:
        existing = {r.run_id for r in journal.list_runs()}
        clash = [p.stats.run_id for p in planned if p.stats.run_id in existing]
        if clash:
            raise FlipbenchError(
                f"{db} already holds {len(clash)} imported run(s) ({', '.join(clash[:3])}"
                f"{', …' if len(clash) > 3 else ''}); importing again would duplicate them:"
                " import into a fresh journal (--db)"
            )
        for plan in planned:
            _write_run(journal, plan)


def _write_run(journal: Journal, plan: PlannedRun) -> None:
    run_id, experiment = plan.stats.run_id, plan.experiment
    journal.create_run(
        run_id=run_id, experiment=experiment.name, model=plan.stats.model, mode="sample",
        config=plan.config, definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions=plan.versions,
    )  # fmt: skip
    messages = {c.key: [dict(m) for m in c.messages] for c in experiment.conditions()}
    next_index: Counter[str] = Counter()
    for reading in plan.readings:
        # What was sent: the released prompt where the file has one, else our rendering.
        request: dict[str, Any] = (
            {"messages": [{"role": "user", "content": reading.prompt}], "prompt_source": "released"}
            if reading.prompt is not None
            else {"messages": messages[reading.condition], "prompt_source": "reconstructed"}
        )
        record = SampleRecord(
            condition=reading.condition, sample_index=next_index[reading.condition],
            status="ok", request=request, response=None, valid=reading.answer is not None,
            content=reading.content, answer=reading.answer, invalid_category=reading.category,
            meta=reading.meta,
        )  # fmt: skip
        next_index[reading.condition] += 1
        journal.record(run_id, record)
    journal.set_status(run_id, "complete", plan.message)
