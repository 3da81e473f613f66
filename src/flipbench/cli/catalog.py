"""What is in the journal and what can be run: `runs`, `experiments` and `delete`.

`runs` is where a user finds the run id every other command needs, so an id is never cut:
the table gives up width in every other column first (they wrap), and when even that cannot
fit the terminal, each run is printed as a block of its own lines.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

from flipbench.cli.common import DbOption, app, out, plain, usage_failure
from flipbench.config import DEFAULT_DB
from flipbench.errors import FlipbenchError
from flipbench.safety import clean_json, mask_secrets, terminal_safe
from flipbench.store import RunRow
from flipbench.summaries import RunSummary, run_summaries
from flipbench.tasks import EXPERIMENTS, ExperimentDefinition

#: What the narrower table puts in one wrapped cell.
SETTINGS = ("experiment", "model", "mode", "N", "grid", "T")
#: A wrapped column keeps at least this many characters; below that a layout does not fit.
MIN_WRAPPED = 16
RUN_COLUMNS = ("id", "experiment", "model", "mode", "N", "grid", "T", "status", "S", "created")
PARTIAL_NOTE = (
    "* partial: the run did not complete; `flipbench show ID` says how much of its grid S stands on"
)
NO_RUNS_HINT = (
    "no runs in {db} yet: `flipbench demo` (offline, a few seconds), `flipbench run single-flip"
    " --model MODEL`, or `flipbench import failure-to-mix` for the paper's runs"
)


@dataclass(frozen=True)
class RunLine:
    """One run as `runs` lists it: the stored row, and S read back from its samples."""

    run: RunRow
    n: int | None
    grid: str
    temperature: float | None
    d: int | None
    s: float
    partial: bool
    grid_share: float | None

    @classmethod
    def of(cls, run: RunRow, summary: RunSummary) -> RunLine:
        """Settings from the stored definition; S as `run_summaries` read it back."""
        definition = run.definition
        n, temperature = definition.get("n"), definition.get("temperature")
        params = definition.get("params")
        d = params.get("D") if isinstance(params, dict) else None
        return cls(
            run, n if isinstance(n, int) else None, str(definition.get("grid", "")),
            temperature if isinstance(temperature, int | float) else None,
            int(d) if isinstance(d, str) and d.isdigit() else None, summary.s,
            run.display_status != "complete", summary.grid_share,
        )  # fmt: skip

    def cells(self) -> list[str]:
        run = self.run
        experiment = run.experiment + (f" (D = {self.d})" if self.d is not None else "")
        if (intervention := _intervention(run)) != "direct":
            experiment += f" +{intervention}"
        s = "—" if math.isnan(self.s) else f"{self.s:.3f}" + ("*" if self.partial else "")
        n = "—" if run.mode == "exact" or self.n is None else str(self.n)
        t = "" if self.temperature is None else f"{self.temperature:g}"
        created = run.created_at[:16].replace("T", " ")
        return [run.run_id, experiment, run.model, run.mode, n, self.grid, t,
                run.display_status, s, created]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "run_id": run.run_id, "experiment": run.experiment, "model": run.model,
            "mode": run.mode, "n": self.n, "grid": self.grid, "temperature": self.temperature,
            "d": self.d, "intervention": _intervention(run), "status": run.display_status,
            "S": None if math.isnan(self.s) else self.s, "S_partial": self.partial,
            "grid_share": self.grid_share, "created_at": run.created_at,
        }  # fmt: skip


def _intervention(run: RunRow) -> str:
    """How the run asked (its config's `intervention`; runs made before interventions: direct)."""
    value = run.config.get("intervention") if isinstance(run.config, dict) else None
    return value if isinstance(value, str) else "direct"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], wraps: str) -> Table:
    """Columns that must stay whole do not wrap; `wraps` (one header) gives up width first."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in headers:
        justify: JustifyMethod = "right" if name in ("N", "T", "S") else "left"
        if name == wraps:
            table.add_column(name, overflow="fold", min_width=MIN_WRAPPED, justify=justify)
        else:
            table.add_column(name, no_wrap=True, justify=justify)
    for row in rows:
        table.add_row(*map(plain, row))
    return table


def _fits(table: Table, whole: Sequence[str], width: int) -> bool:
    """Rendered `width` wide, the table keeps every cell of `whole` intact on one line (rich
    cuts a column that does not wrap with an ellipsis when it must) and no line is longer."""
    probe = Console(width=width, record=True, file=io.StringIO(), markup=False, emoji=False)
    probe.print(table)
    rendered = probe.export_text().splitlines()
    if max(map(len, rendered), default=0) > width:
        return False
    return all(any(cell in line for line in rendered) for cell in whole)


def _extremes(rows: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """The rows that decide a layout: for each column, the one with its longest cell and the
    one with its longest word. Column widths come from these alone, so a table of them fits
    exactly when the whole table does; probing with them instead of every run keeps `runs` on
    a hundred runs fast (rendering the full table once per candidate layout cost ~0.5 s)."""
    keep: set[int] = set()
    for j in range(len(rows[0]) if rows else 0):
        keep.add(max(range(len(rows)), key=lambda i: len(rows[i][j])))
        keep.add(max(range(len(rows)), key=lambda i: max(map(len, rows[i][j].split() or [""]))))
    return [rows[i] for i in sorted(keep)]


def runs_layout(lines: Sequence[RunLine], width: int) -> Table | None:
    """The widest table that fits `width` with every id whole: every column (with `created`
    when there is room), then the settings in one wrapped cell; None when neither fits (the
    caller prints a block per run)."""
    cells = [[terminal_safe(mask_secrets(c)) for c in line.cells()] for line in lines]
    for headers in (RUN_COLUMNS, RUN_COLUMNS[:-1]):
        rows = [row[: len(headers)] for row in cells]
        probe = _extremes(rows)
        whole = [c for row in probe for h, c in zip(headers, row, strict=True) if h != "model"]
        if _fits(_table(headers, probe, wraps="model"), whole, width):
            return _table(headers, rows, wraps="model")
    rows = [[row[0], _named(row, SETTINGS), row[7], row[8]] for row in cells]
    probe = _extremes(rows)
    fits = _fits(_table(("id", "run", "status", "S"), probe, wraps="run"),
                 [c for row in probe for c in [*row[::2], *row[3:]]], width)  # fmt: skip
    return _table(("id", "run", "status", "S"), rows, wraps="run") if fits else None


def _named(row: Sequence[str], names: Sequence[str]) -> str:
    """The cells of `names` joined by ` · `, named where a bare value would be unclear
    (`N=100`, `T=1`) and without spaces inside one item, so that a wrapped line breaks only
    between items."""
    items = []
    for name, value in zip(RUN_COLUMNS, row, strict=True):
        if name not in names or not value:
            continue
        bare = name in ("experiment", "model", "mode", "status")
        items.append(value.replace(" ", "") if bare else f"{name}={value.replace(' ', 'T')}")
    return " · ".join(items)


def say(text: str) -> None:
    """A note or hint, wrapped to the terminal like the table above it."""
    print(textwrap.fill(terminal_safe(mask_secrets(text)), max(out.width, 20)))


def print_runs(lines: Sequence[RunLine], db: Path) -> None:
    if not lines:
        say(NO_RUNS_HINT.format(db=db))
        return
    table = runs_layout(lines, out.width)
    if table is not None:
        out.print(table)
    else:  # too narrow for any table that keeps ids whole: one block per run
        for line in lines:
            row = [terminal_safe(mask_secrets(c)) for c in line.cells()]
            print(row[0])
            named = _named(row, RUN_COLUMNS[1:-1])
            width = max(out.width, 20)
            print(textwrap.fill(named, width, initial_indent="  ", subsequent_indent="  "))
    if any(line.partial and not math.isnan(line.s) for line in lines):
        say(PARTIAL_NOTE)


@app.command("runs")
def runs_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """List the runs in the journal: id, experiment, model, mode, N, grid, T, status, S."""
    try:
        if fmt not in ("table", "json"):
            raise FlipbenchError(f"unknown format {fmt!r} (use table or json)")
        lines = [RunLine.of(run, summary) for run, summary in run_summaries(db)]
    except FlipbenchError as exc:
        raise usage_failure(str(exc)) from None
    if fmt == "json":
        listing = clean_json([line.to_json() for line in lines])
        print(json.dumps(listing, indent=2, allow_nan=False))
        return
    print_runs(lines, db)


def _grid_text(name: str, definition: ExperimentDefinition) -> str:
    specs = definition.grids[name]
    mark = " (default)" if name == definition.default_grid and name != "default" else ""
    span = f"{specs[0].value} … {specs[-1].value}" if len(specs) > 1 else specs[0].value
    return f"{name}{mark}: {len(specs)} ({span})"


def experiment_json(definition: ExperimentDefinition) -> dict[str, Any]:
    return {
        "name": definition.name, "title": definition.title, "kind": definition.kind,
        "grids": {k: [s.value for s in v] for k, v in definition.grids.items()},
        "default_grid": definition.default_grid, "explicit_p": definition.builder is not None,
        "n": definition.n, "temperature": definition.temperature,
        "max_tokens": definition.resolve().max_tokens,
        "d": int(definition.params.get("D", definition.d)),
        "answers": list(definition.answers), "exact": definition.exact,
        "exact_reading": definition.exact_reading,
    }  # fmt: skip


@app.command("experiments")
def experiments_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """List the experiments, their grids (conditions: first … last value) and defaults."""
    if fmt not in ("table", "json"):
        raise usage_failure(f"unknown format {fmt!r} (use table or json)")
    definitions = [EXPERIMENTS[name] for name in sorted(EXPERIMENTS)]
    if fmt == "json":
        print(json.dumps(clean_json([experiment_json(d) for d in definitions]), indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_lines=True)
    longest = max(len(d.name) for d in definitions)
    for name in ("experiment", "grids (--grid NAME: conditions)", "defaults"):
        table.add_column(name, overflow="fold", min_width=longest if name == "experiment" else None)
    for d in definitions:
        resolved = d.resolve()  # the defaults as a run gets them (max_tokens grows with D)
        defaults = [f"--n {resolved.n}", f"--temperature {resolved.temperature:g}",
                    f"--max-tokens {resolved.max_tokens}"]  # fmt: skip
        if "D" in d.params:
            defaults.append(f"--d {d.params['D']}")
        if d.exact_reading == "first-token":
            defaults.append("modes: sample; exact only with --first-token")
        else:
            defaults.append("modes: sample" + (", exact" if d.exact else ""))
        if d.builder is not None:
            defaults.append("--p VALUES instead of a grid")
        grids = "\n".join(_grid_text(name, d) for name in d.grids)
        table.add_row(plain(f"{d.name}\n{d.title}"), plain(grids), plain("\n".join(defaults)))
    out.print(table)
    out.print("run one: flipbench run EXPERIMENT [--grid NAME] [--n N] [--mode sample|exact]")


@app.command("delete")
def delete_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (see `flipbench runs`)")],
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Delete a run for good: its journal rows and its figure folder (never a running run)."""
    from flipbench import api

    try:
        removed, folder = api.delete_run(run_id, db)
    except FlipbenchError as exc:
        raise usage_failure(str(exc)) from None
    where = f" and {folder}" if folder is not None else ""
    out.print(plain(f"deleted run {run_id}: {removed:,} samples from {db}{where}"))
