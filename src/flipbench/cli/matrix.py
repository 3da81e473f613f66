"""`flipbench matrix`: experiments × interventions × models, every cell a run, one budget.

`flipbench matrix -e EXP -i NAME -m MODEL [options]` validates every cell and prints the plan
before anything runs, then runs the cells one after another; `--resume ID` continues one;
`matrix show ID` prints each intervention against `direct` (ΔS with its interval, invalid
share, token and cost overhead per sample). `flipbench report ID` writes the HTML page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flipbench.cli.common import (
    DbOption,
    app,
    options_given,
    out,
    plain,
    usage_failure,
    user_errors,
)
from flipbench.config import DEFAULT_DB

if TYPE_CHECKING:
    from flipbench.estimate import Estimate
    from flipbench.matrix.table import CellRow, MatrixTable

matrix_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    help="Run experiments × interventions × models (every cell a run, `direct` always"
    " included as the baseline), with the plan first; `matrix show ID` compares them.",
)
app.add_typer(matrix_app, name="matrix")


def _say(text: str) -> None:
    out.print(plain(text))


#: What `--resume` may set; the stored matrix defines everything else.
_RESUME_OPTIONS = frozenset({"resume", "max_cost", "env_file", "db", "progress"})


@matrix_app.callback()
def matrix(
    ctx: typer.Context,
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="experiment (repeatable)")
    ] = None,
    intervention: Annotated[
        list[str] | None,
        typer.Option("--intervention", "-i", help="intervention (repeatable; direct is added)"),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="model (repeatable)")
    ] = None,
    n: Annotated[int | None, typer.Option("--n", help="valid samples per condition")] = None,
    grid: Annotated[str | None, typer.Option(help="named grid of every experiment")] = None,
    mode: Annotated[str, typer.Option(help="sample | exact | auto")] = "sample",
    max_tokens: Annotated[int | None, typer.Option(help="completion token cap per reply")] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="USD for the whole matrix; it stops cleanly there")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="print the plan and stop")] = False,
    resume: Annotated[str | None, typer.Option(help="continue matrix ID")] = None,
    progress: Annotated[bool, typer.Option(help="a progress bar per run")] = True,
    env_file: Annotated[Path | None, typer.Option(help=".env file with API keys")] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Run a matrix; see `flipbench matrix --help`."""
    if ctx.invoked_subcommand is not None:
        return
    from flipbench.config import RunConfig
    from flipbench.matrix import api
    from flipbench.matrix.cells import MatrixOptions

    if resume is not None:
        if given := options_given(ctx, _RESUME_OPTIONS):
            raise usage_failure(
                f"--resume continues matrix {resume} as it was planned; {', '.join(given)}"
                " cannot change (only --max-cost, --env-file and --db can)"
            )
    elif not experiment or not model:
        raise usage_failure("name at least one --experiment and one --model (or --resume ID)")
    with user_errors(env_file):
        if resume is not None:
            outcome = api.resume_matrix(
                resume, db, max_cost=max_cost, notify=_say, progress=progress
            )
        else:
            run = RunConfig(n=n, grid=grid, mode=mode, max_tokens=max_tokens)  # type: ignore[arg-type]
            options = MatrixOptions(
                experiments=experiment or [], interventions=intervention or [],
                models=model or [], run=run, max_cost=max_cost,
            )  # fmt: skip
            outcome = api.start_matrix(options, db, notify=_say, progress=progress, dry_run=dry_run)
    if outcome.row is None:
        return
    _say(f"matrix {outcome.matrix_id}: {outcome.status}")
    if outcome.row.message:
        _say(outcome.row.message)
    _say(f"table: flipbench matrix show {outcome.matrix_id}")


def _estimate(e: Estimate | None, signed: bool = False) -> str:
    if e is None or math.isnan(e.value):
        return "—"
    sign = "+" if signed else ""
    if math.isnan(e.low) or e.low == e.high:
        return f"{e.value:{sign}.3f}"
    # the interval on its own line: the table stays readable at 80 columns
    return f"{e.value:{sign}.3f}\n[{e.low:{sign}.3f},{e.high:{sign}.3f}]"


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def print_table(table: MatrixTable) -> None:
    from rich.table import Table

    _say(
        f"matrix {table.matrix_id}: {table.status}; spent ${table.spent:.4f}"
        + (f" of ${table.max_cost:g}" if table.max_cost is not None else "")
    )
    if table.message:
        _say(table.message)
    paid = any(r.cost_per_sample for r in table.rows)  # no cost column for local models
    names = ["intervention", "S", "ΔS vs direct", "invalid", "tokens", "×dir"] + (
        ["$/sample"] if paid else []
    )
    groups: dict[tuple[str, str], list[CellRow]] = {}
    for r in table.rows:
        groups.setdefault((r.experiment, r.model), []).append(r)
    for (experiment, model), rows in groups.items():  # one table per experiment and model
        grid = Table(title=plain(f"{experiment} on {model}: each intervention against direct"))
        for name in names:
            text = name == "intervention"
            grid.add_column(name, overflow="fold", justify="left" if text else "right",
                            no_wrap=not text, min_width=10 if text else None)  # fmt: skip
        for r in rows:
            state = "" if r.state == "complete" else f"\n({r.state})"
            cells = [
                r.intervention + state, _estimate(r.s), _estimate(r.delta_s, signed=True),
                _num(r.invalid_share, ".1%"), _num(r.tokens_per_sample, ".1f"),
                _num(r.token_ratio, ".2f"),
            ] + ([_num(r.cost_per_sample, ".3g")] if paid else [])  # fmt: skip
            grid.add_row(*map(plain, cells))
        out.print(grid)
    _say(
        "ΔS < 0: closer to the requested distribution than direct; the interval is each"
        " side's own at √0.95, differenced (covers whenever both do); tokens: prompt and"
        " completion per sample, ×dir: against direct"
    )
    for (experiment, model), rows in groups.items():
        scored = [r for r in rows if r.score is not None]
        if not scored:
            continue
        title = f"{experiment} on {model}: the part's score out of 20 (the benchmark's on its grid)"
        parts = Table(title=plain(title))
        for name in ("intervention", "part", "score", "Δscore vs direct"):
            text = name in ("intervention", "part")
            parts.add_column(name, justify="left" if text else "right", no_wrap=not text)
        for r in scored:
            parts.add_row(*map(plain, (r.intervention, r.part or "", _estimate(r.score),
                                       _estimate(r.delta_score, True))))  # fmt: skip
        out.print(parts)


@matrix_app.command("show")
def show(
    matrix_id: Annotated[str, typer.Argument(help="a matrix id")],
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Each intervention against direct: S, ΔS with its interval, invalid share, overheads."""
    if fmt not in ("table", "json"):
        raise usage_failure(f"--format must be table or json, not {fmt!r}")
    from flipbench.matrix import api

    with user_errors():
        table = api.matrix_table_of(matrix_id, db)
    if fmt == "json":
        print(json.dumps(table.model_dump(mode="json"), indent=1))
        return
    print_table(table)
