"""`flipbench bench`, `leaderboard`, `import` and `interventions`: the benchmark, the paper's
data and the ways of asking a model to randomise, on the CLI.

Registered on the one `app` of `flipbench.cli`; like it, a thin layer over the Python API.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from flipbench.cli.common import (
    DbOption,
    app,
    out,
    parse_model_options,
    plain,
    usage_failure,
    user_errors,
)
from flipbench.config import DEFAULT_DB, RunConfig
from flipbench.errors import FlipbenchError
from flipbench.progress import note
from flipbench.safety import csv_cell, mask_secrets, terminal_safe

if TYPE_CHECKING:  # the benchmark, its models and the API load when a command needs them
    from flipbench.benchmark_models import BenchmarkSummary, PartMetrics, ScoreEstimate
    from flipbench.importers import RunImport

PART_TITLES = {
    "exp1": "Exp1 single flip",
    "exp2": "Exp2 two flips in one reply",
    "exp3": "Exp3 ternary draw",
    "exp4": "Exp4 decisions (games)",
    "exp5": "Exp5 word and position bias",
}


def _headline(metrics: PartMetrics) -> str:
    """The sub-metrics that explain a part's score, in one cell."""
    from flipbench.benchmark_models import (
        Exp1Metrics,
        Exp2Metrics,
        Exp3Metrics,
        Exp4Metrics,
        Exp5Metrics,
    )

    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    if isinstance(metrics, Exp1Metrics):
        return f"S {f(metrics.S)}"
    if isinstance(metrics, Exp2Metrics):
        return f"S2 {f(metrics.S2)}, S_avg {f(metrics.S_avg)}, S1 {f(metrics.S1)}"
    if isinstance(metrics, Exp3Metrics):
        return f"S0 {f(metrics.S0)}, S1 {f(metrics.S1)}, S2 {f(metrics.S2)}"
    if isinstance(metrics, Exp4Metrics):
        games = {
            "bioinformatics": metrics.bioinformatics,
            "matching": metrics.matching_pennies,
            "business": metrics.business,
        }
        return "; ".join(f"{name} S {f(g.S)} d {f(g.d)}" for name, g in games.items())
    if isinstance(metrics, Exp5Metrics):
        return f"pos {f(metrics.avg_pos_bias)}, red {f(metrics.avg_red_bias)}"
    return ""


def _interval(estimate: ScoreEstimate, undefined: str = "") -> str:
    """The interval as [low, high] to one decimal, or `undefined` when it is undefined."""
    lo, hi = estimate.ci
    return undefined if lo is None or hi is None else f"[{lo:.1f}, {hi:.1f}]"


def _floor(estimate: ScoreEstimate) -> str:
    """The noise floor: what a perfectly calibrated model is expected to score here."""
    from flipbench import benchmark

    return benchmark.format_score(estimate.noise_floor)


def print_summary(summary: BenchmarkSummary) -> None:
    from flipbench import benchmark

    table = Table(title=plain(f"{summary.bench_id}  {summary.model}"))
    for name in ("part", "score", "95% CI", "noise floor", "sub-metrics"):
        table.add_column(name, justify="left" if name in ("part", "sub-metrics") else "right")
    for part, body in summary.parts.by_name().items():
        score = benchmark.format_score(body.score)
        table.add_row(
            plain(PART_TITLES.get(part, part)), plain(f"{score} / 20"), plain(_interval(body)),
            plain(_floor(body)), plain(_headline(body.metrics)),
        )  # fmt: skip
    total = summary.total
    table.add_row(
        Text("total", style="bold"),
        Text.assemble((benchmark.format_score(total.score), "bold"), " / 100"),
        plain(_interval(total, benchmark.format_score(None))),
        plain(_floor(total)),
        plain("" if summary.complete else "incomplete: some runs are not complete"),
    )  # fmt: skip
    out.print(table)
    out.print(plain(NOISE_FLOOR_NOTE))


NOISE_FLOOR_NOTE = (
    "noise floor: what a perfectly calibrated model is expected to score with these grids and"
    " numbers of answers (sampling noise alone lowers a sampled score; docs/benchmark.md)"
)


@app.command()
def bench(
    model: Annotated[str, typer.Option("--model", "-m")] = "local/smollm2",
    json_path: Annotated[Path | None, typer.Option("--json", help="summary JSON path")] = None,
    mode: Annotated[
        str, typer.Option(help="auto (exact where possible) | exact | sample")
    ] = "auto",
    n: Annotated[int | None, typer.Option("--n", help="valid samples per condition")] = None,
    game_n: Annotated[
        int | None, typer.Option("--game-n", help="valid samples per game condition (default: --n)")
    ] = None,
    game_max_tokens: Annotated[
        int | None, typer.Option(help="max_tokens of a game reply (default: the game's, 4096)")
    ] = None,
    max_attempts_factor: Annotated[
        float, typer.Option(help="attempts per condition, as a multiple of N, before giving up")
    ] = 5.0,
    resume: Annotated[str | None, typer.Option("--resume", help="continue benchmark ID")] = None,
    max_cost: Annotated[float | None, typer.Option(help="USD cap for each run")] = None,
    max_concurrency: Annotated[int | None, typer.Option()] = None,
    timeout: Annotated[float, typer.Option(help="per-request timeout, seconds")] = 60.0,
    model_option: Annotated[
        list[str] | None, typer.Option("--model-option", "-M", help="extra request field k=v")
    ] = None,
    env_file: Annotated[Path | None, typer.Option(help=".env file with API keys")] = None,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Run the 100-point benchmark (five parts, seven runs) and print its score."""
    from flipbench import benchmark

    with user_errors(env_file):
        base = RunConfig(  # validates every bound (n too) before anything runs
            n=n, max_cost=max_cost, max_concurrency=max_concurrency, timeout_s=timeout,
            model_options=parse_model_options(model_option or []),
            max_attempts_factor=max_attempts_factor,
        )  # fmt: skip
        RunConfig(n=game_n, max_tokens=game_max_tokens)  # the same bounds for the game options
        if resume is not None:
            model = benchmark.runs_of(db, resume)[0].model
        outcome = benchmark.run_benchmark(
            model, db, bench_id=resume, mode=mode, n=n, base=base, json_path=json_path,
            progress=progress, notify=note, game_n=game_n, game_max_tokens=game_max_tokens,
        )  # fmt: skip
    print_summary(outcome.summary)
    out.print(plain(f"summary: {outcome.path}"))


@app.command("interventions")
def interventions_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """List the interventions (`flipbench run EXP --intervention NAME`), one line each."""
    import json

    from flipbench.interventions import INTERVENTIONS

    if fmt not in ("table", "json"):
        raise usage_failure(f"unknown format {fmt!r} (use table or json)")
    if fmt == "json":
        print(json.dumps([i.model_dump(mode="json") for i in INTERVENTIONS.values()], indent=2))
        return
    table = Table(title="interventions (docs/interventions.md: prompts, parsers, sources)")
    for name in ("intervention", "what it does", "exact mode", "needs"):
        table.add_column(name, overflow="fold")
    for i in INTERVENTIONS.values():
        needs = f"an API taking `{i.needs}`" if i.needs else ""
        table.add_row(*map(plain, (i.name, i.summary, "yes" if i.bare_answer and not i.seed
                                   else "no", needs)))  # fmt: skip
    out.print(table)
    out.print("run one: flipbench run EXPERIMENT --intervention NAME")


EMPTY_LEADERBOARD = (
    "no benchmark in {db} yet: `flipbench bench --model MODEL` runs one (seven runs, scored out"
    " of 100; docs/benchmark.md), then `flipbench leaderboard` ranks them"
)


@app.command("leaderboard")
def leaderboard_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | csv | markdown")] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Rank every benchmark in the journal (Table S1 layout), with bootstrap intervals."""
    from flipbench import benchmark

    try:
        if fmt not in ("table", "csv", "markdown"):
            raise FlipbenchError(f"unknown format {fmt!r} (use table, csv or markdown)")
        rows = benchmark.leaderboard(db)
    except FlipbenchError as exc:
        raise usage_failure(str(exc)) from None
    if not rows:  # where a new user is stuck: say how to make one (stderr keeps CSV clean)
        hint = EMPTY_LEADERBOARD.format(db=db)
        print(hint, file=sys.stdout if fmt == "table" else sys.stderr)
        if fmt == "table":
            return
    header = [
        "rank",
        "model",
        "total",
        "95% CI",
        "noise floor",
        "Exp1",
        "Exp2",
        "Exp3",
        "Exp4",
        "Exp5",
        "bench id",
    ]
    lines = []
    for rank, r in enumerate(rows, 1):
        parts = [benchmark.format_score(p.score) for p in r.parts.by_name().values()]
        total = benchmark.format_score(r.total.score) + ("" if r.complete else " *")
        floor = _floor(r.total)
        lines.append([str(rank), r.model, total, _interval(r.total), floor, *parts, r.bench_id])
    if fmt == "csv":  # text cells cannot start a spreadsheet formula
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([csv_cell(mask_secrets(cell)) for cell in line] for line in lines)
        print(buffer.getvalue(), end="")
        return
    if fmt == "markdown":
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(_markdown_cell(cell) for cell in line) + " |")
        return
    title = "flipbench leaderboard (100-point benchmark; * = incomplete; noise floor = what a"
    title += " perfectly calibrated model scores at the same grids and n)"
    table = Table(title=title)
    for name in header:
        table.add_column(name, justify="left" if name in ("model", "bench id") else "right")
    for line in lines:
        table.add_row(*map(plain, line))
    out.print(table)


def _markdown_cell(text: str) -> str:
    """A table cell that stays one cell on one line and holds no HTML, link or image."""
    text = " ".join(terminal_safe(mask_secrets(text)).split())
    for char in "\\|<>`":
        text = text.replace(char, "\\" + char)
    return text.replace("](", "]\\(")


@app.command("import")
def import_cmd(
    source: Annotated[str, typer.Argument(help="failure-to-mix")],
    directory: Annotated[
        Path | None,
        typer.Argument(help="folder with the released CSVs (default: the copy in the package)"),
    ] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Load released data (the Failure to Mix CSVs, shipped with flipbench) into the journal as
    runs of its models."""
    from flipbench import api

    with user_errors():
        report = api.import_data(source, directory, db)
    for line in report.lines():
        out.print(plain(line))
    table = Table(title="imported runs: the headline metric of each")
    for name in ("run", "experiment", "model", "S", "other metrics"):
        table.add_column(name, justify="right" if name == "S" else "left")
    for run in report.runs:
        results = api.run_results(run.run_id, db)
        s = "" if math.isnan(results.s) else f"{results.s:.3f}"
        table.add_row(*map(plain, (run.run_id, results.experiment.name, results.run.model, s,
                                   "; ".join(results.lines))))  # fmt: skip
    out.print(table)
    with user_errors():
        for stem, run_ids in _paper_figures(report.runs).items():
            for path in api.draw_figures(run_ids, stem, db):
                if path.suffix == ".png":
                    out.print(plain(f"figure: {path}"))
    out.print("each in full: `flipbench show RUN_ID` (--format json for every metric)")


def _paper_figures(runs: Sequence[RunImport]) -> dict[str, list[str]]:
    """The paper's figures, one per released experiment: its models' runs side by side."""
    groups: dict[str, list[str]] = {}
    for run in runs:  # run ids: ftm-<figure label>-<model>, model = paper/<model>
        model = run.model.removeprefix("paper/")
        stem = run.run_id.removesuffix(f"-{model}")
        groups.setdefault(stem, []).append(run.run_id)
    return groups
