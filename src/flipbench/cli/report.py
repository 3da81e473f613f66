"""`flipbench report` (one self-contained HTML file) and `flipbench compare` (runs of one
experiment side by side): reading commands, registered on the one `app` of `flipbench.cli`.

Both only read the journal. What they write goes next to it, under `flipbench-runs/` (or where
`--out` says); the paths are printed, as `run` prints its figures.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flipbench.cli.common import DbOption, app, out, plain, user_errors
from flipbench.config import DEFAULT_DB
from flipbench.errors import FlipbenchError
from flipbench.report.samples import DEFAULT_SAMPLES
from flipbench.safety import clean_json
from flipbench.store import Journal, validate_run_id

if TYPE_CHECKING:  # the API, the benchmark and the report load when a command runs
    from flipbench.benchmark_models import BenchmarkSummary
    from flipbench.report.compare import Comparison

__all__ = ["compare", "report"]


def _expand(db: Path, ids: list[str]) -> tuple[list[str], list[BenchmarkSummary], list[str]]:
    """Run ids as given; a benchmark id (`flipbench bench`) stands for its runs and adds its
    score table; a sweep or matrix id adds its section (not its runs)."""
    from flipbench import api, benchmark
    from flipbench.sweep import api as sweep_api

    runs = {r.run_id for r in api.list_runs(db)}
    sweeps = {row[0] for row in sweep_api.sweeps(db)}
    run_ids: list[str] = []
    summaries = []
    sweep_ids: list[str] = []
    for given in ids:
        if given in runs:
            run_ids.append(given)
            continue
        if given in sweeps:
            sweep_ids.append(given)
            continue
        try:
            members = benchmark.runs_of(db, given)
        except FlipbenchError:
            raise FlipbenchError(
                f"no run, benchmark or sweep {given!r} in {db}"
                " (see `flipbench runs` and `flipbench sweep list`)"
            ) from None
        run_ids.extend(r.run_id for r in members)
        summaries.append(benchmark.summarize(db, given))
    return list(dict.fromkeys(run_ids)), summaries, list(dict.fromkeys(sweep_ids))


def _default_report_path(db: Path, ids: list[str]) -> Path:
    """One run or benchmark: its own folder; several: a dated file under `reports/`."""
    from flipbench import api

    if len(ids) == 1:
        return api.run_dir(db, ids[0]) / "report.html"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return db.resolve().parent / "flipbench-runs" / "reports" / f"report-{stamp}.html"


@app.command()
def report(
    ids: Annotated[
        list[str], typer.Argument(help="run ids, a benchmark id, a sweep or a matrix id")
    ],
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default: next to the run)")
    ] = None,
    samples: Annotated[
        int,
        typer.Option(help="replies per condition in the browser, valid and invalid each (-1: all)"),
    ] = DEFAULT_SAMPLES,
    force: Annotated[
        bool,
        typer.Option("--force", help="overlay runs of one experiment whose definitions differ"),
    ] = False,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Write one self-contained HTML report (figures, tables, settings, replies) of runs,
    a benchmark or a sweep (its ranking, dot plot and regression effects)."""
    from flipbench.report.html import write_report  # matplotlib and jinja2 load only here

    with user_errors():
        if samples < -1:
            raise FlipbenchError("--samples must be -1 (all) or a count ≥ 0")
        run_ids, summaries, sweep_ids = _expand(db, ids)
        path = output or _default_report_path(db, ids)
        if path.is_dir():
            raise FlipbenchError(f"--out {path} is a folder; name the HTML file")
        sweep_views, matrix_views = [], []
        if sweep_ids:
            from flipbench.matrix.api import matrix_report_view
            from flipbench.sweep.api import get_sweep, sweep_report_view
            from flipbench.sweep.journal import MATRIX_KIND

            for sweep_id in sweep_ids:
                if get_sweep(sweep_id, db).experiment == MATRIX_KIND:
                    matrix_views.append(matrix_report_view(sweep_id, db))
                else:
                    sweep_views.append(sweep_report_view(sweep_id, db))
        written = write_report(
            db, run_ids, path, benchmarks=summaries, sweeps=sweep_views, matrices=matrix_views,
            samples=samples, force=force,
        )  # fmt: skip
    out.print(plain(f"report: {written}"))


def _print_comparison(comparison: Comparison) -> None:
    table = comparison.table
    grid = Table(title=plain(f"{comparison.results[0].run.experiment}: runs side by side"))
    flips = comparison.results[0].experiment.builder_kind == "flip"
    grid.add_column("p %" if flips else "condition")
    for label in table.labels:
        grid.add_column(plain(label), justify="right")
    for (_, value), row in zip(table.conditions, table.cells, strict=True):
        grid.add_row(plain(value), *(plain(c.text() if c else "—") for c in row))
    grid.add_section()
    for name, texts in table.summary:
        grid.add_row(plain(name), *map(plain, texts))
    out.print(grid)
    for d in comparison.differences:
        out.print(plain(f"{'differs (forced)' if d.blocking else 'note'}: {d.line()}"))


@app.command()
def compare(
    ids: Annotated[list[str], typer.Argument(help="run ids of one experiment, or two sweep ids")],
    paper: Annotated[
        bool,
        typer.Option("--paper", help="add the imported paper runs with the same definition"),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="compare runs whose definitions differ")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="folder for the figures (default flipbench-runs/compare)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="file name stem of the figures")] = None,
    html: Annotated[
        Path | None, typer.Option(help="also write an HTML report of these runs here")
    ] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Overlay runs of one experiment (the imported paper runs too) in one figure, and show
    their rates and S side by side; runs whose definitions differ are refused unless --force.
    Two sweep ids: every model both ranked, its change with an interval."""
    from flipbench.report.compare import compare_runs, paper_runs_for  # matplotlib loads here
    from flipbench.report.html import write_report

    with user_errors():
        if fmt not in ("table", "json"):
            raise FlipbenchError(f"unknown format {fmt!r} (use table or json)")
        if _sweep_ids(db, ids):
            _compare_sweeps(db, ids, fmt, force)
            return
        run_ids = list(ids)
        if paper:
            with Journal(db, create=False) as journal:
                first = journal.get_run(run_ids[0])
                run_ids += [r for r in paper_runs_for(journal, first) if r not in run_ids]
        if len(run_ids) < 2:
            raise FlipbenchError("compare needs at least two runs (or one and --paper)")
        stem = name or f"compare-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        validate_run_id(stem, "--name")
        folder = out_dir or db.resolve().parent / "flipbench-runs" / "compare"
        with Journal(db, create=False) as journal:
            comparison = compare_runs(journal, run_ids, folder, stem, force=force)
        written = None
        if html is not None:
            written = write_report(db, run_ids, html, force=force)
    if fmt == "json":
        view = {
            **comparison.table.to_json(),
            "differences": [
                {"field": d.field, "values": d.values, "blocking": d.blocking}
                for d in comparison.differences
            ],
            "figures": [str(p) for p in comparison.figures],
        }
        print(json.dumps(clean_json(view), indent=2, allow_nan=False))
        return
    _print_comparison(comparison)
    for path in comparison.figures:
        if path.suffix == ".png":
            out.print(plain(f"figure: {path}"))
    if written is not None:
        out.print(plain(f"report: {written}"))


@app.command()
def gap(
    run_id: Annotated[str, typer.Argument(help="a run made with --intervention verbalized")],
    exact: Annotated[
        str | None, typer.Option(help="an exact-mode run of the same experiment and model")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder for the figure (default: the run's)")
    ] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """The knowledge–sampling gap: the probability the model states, its token probability
    (with --exact) and what it samples, per condition, in one table and one figure."""
    from flipbench import api
    from flipbench.report.gap import gap_figure, knowledge_gap

    with user_errors():
        if fmt not in ("table", "json"):
            raise FlipbenchError(f"--format must be table or json, not {fmt!r}")
        validate_run_id(run_id)
        with Journal(db, create=False) as journal:
            table = knowledge_gap(journal, run_id, exact)
    if fmt == "json":
        print(json.dumps(clean_json(table.model_dump(mode="json")), indent=1))
        return

    def cell(value: float | None, low: float | None = None, high: float | None = None) -> str:
        if value is None:
            return "—"
        return f"{value:.3f}" + (
            f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        )

    grid = Table(
        title=plain(f'{table.experiment} on {table.model}: stated vs sampled P("{table.first}")')
    )
    for name in ("condition", "p", "stated", "n", "sampled", "n", "exact"):
        grid.add_column(name, justify="left" if name == "condition" else "right")
    for r in table.conditions:
        grid.add_row(*map(plain, (
            r.condition, f"{r.p:.3f}", cell(r.stated, r.stated_low, r.stated_high),
            str(r.stated_n), cell(r.sampled, r.sampled_low, r.sampled_high), str(r.sampled_n),
            cell(r.exact),
        )))  # fmt: skip
    out.print(grid)
    summary = [("stated error mean|stated − p|", table.stated_error),
               ("sampling error mean|sampled − p|", table.sampled_error),
               ("gap mean|sampled − stated|", table.gap)]  # fmt: skip
    for name, value in summary:
        out.print(plain(f"{name}: {cell(value)}"))
    for path in gap_figure(table, out_dir or api.run_dir(db, run_id)):
        out.print(plain(f"figure: {path}"))


@app.command()
def protocols(
    run_a: Annotated[str, typer.Argument(help="a run of D flips in one reply (d-flips)")],
    run_b: Annotated[str, typer.Argument(help="a run of one flip per turn (chained-flips)")],
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Two protocols of many flips compared at every p both answered: lag-1 autocorrelation
    ρ₁ of each and ρ₁(a) − ρ₁(b) with a bootstrap interval over replies (docs/sequences.md)."""
    from flipbench.kinds.sequences import protocol_differences
    from flipbench.results import compute_results

    with user_errors():
        if fmt not in ("table", "json"):
            raise FlipbenchError(f"--format must be table or json, not {fmt!r}")
        for run_id in (run_a, run_b):
            validate_run_id(run_id)
        with Journal(db, create=False) as journal:
            a, b = compute_results(journal, run_a), compute_results(journal, run_b)
        for r in (a, b):
            if r.experiment.kind not in ("d-flips", "chained"):
                raise FlipbenchError(
                    f"run {r.run.run_id} is {r.experiment.name}, not flips in sequence"
                    " (d-flips, chained-flips)"
                )
        diffs = protocol_differences(a, b)
        if not diffs:
            raise FlipbenchError(f"runs {run_a} and {run_b} share no p with valid replies")
    if fmt == "json":
        print(json.dumps(clean_json({p: d.model_dump(mode="json") for p, d in diffs.items()}),
                         indent=1))  # fmt: skip
        return

    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:+.3f}"

    grid = Table(title=plain(f"lag-1 autocorrelation: {run_a} (a) vs {run_b} (b)"))
    for name in ("p", "ρ₁ a", "ρ₁ b", "ρ₁(a) − ρ₁(b) [95% CI]", "replies a", "replies b", "note"):
        grid.add_column(name, justify="left" if name in ("p", "note") else "right")
    for p, d in diffs.items():
        e = d.difference
        diff = "—" if e is None else f"{e.value:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"
        grid.add_row(*map(plain, (p, num(d.rho_a), num(d.rho_b), diff, str(d.replies_a),
                                  str(d.replies_b), d.note)))  # fmt: skip
    out.print(grid)
    out.print(
        plain("ρ₁ < 0: the next flip tends to differ from the last (balancing); > 0: repeats")
    )


def _sweep_ids(db: Path, ids: list[str]) -> bool:
    """Whether `compare` was given sweeps (not runs); a mix is refused."""
    from flipbench.sweep import api as sweep_api

    if not db.exists():
        return False
    known = {row[0] for row in sweep_api.sweeps(db)}
    found = [i in known for i in ids]
    if any(found) and not all(found):
        raise FlipbenchError("compare runs with runs, or two sweeps with each other; not a mix")
    return bool(found) and all(found)


def _compare_sweeps(db: Path, ids: list[str], fmt: str, force: bool) -> None:
    """Two sweeps: every model both ranked, its change with an interval, the rank agreement."""
    from flipbench.sweep import api as sweep_api
    from flipbench.sweep.compare import compare_sweeps

    if len(ids) != 2:
        raise FlipbenchError("compare takes exactly two sweeps")
    a, b = (sweep_api.sweep_ranking(i, db) for i in ids)
    comparison = compare_sweeps(a, b, force=force)
    if fmt == "json":
        print(json.dumps(clean_json(comparison.model_dump(mode="json")), indent=1))
        return
    rho = comparison.rank_correlation
    out.print(plain(
        f"{len(comparison.shared)} models in both sweeps ({len(comparison.only_a)} only in"
        f" {a.sweep_id}, {len(comparison.only_b)} only in {b.sweep_id}); Spearman of their"
        f" biases: {'—' if rho is None else f'{rho:.3f}'}"
    ))  # fmt: skip
    grid = Table(title=plain(f"mean of the draws: {a.sweep_id} (a) → {b.sweep_id} (b)"))
    for name in ("model", "a", "b", "b − a [95% CI]", ""):
        grid.add_column(name, justify="left" if name in ("model", "") else "right")
    for c in comparison.shared:
        change = f"{c.change:+.3f} [{c.change_low:+.3f}, {c.change_high:+.3f}]"
        grid.add_row(*map(plain, (c.model, f"{c.mean_a:.3f}", f"{c.mean_b:.3f}", change,
                                  "moved" if c.beyond_noise else "≈")))  # fmt: skip
    out.print(grid)
    out.print(plain("moved: the interval of the change excludes 0 (Newcombe's MOVER interval)"))
