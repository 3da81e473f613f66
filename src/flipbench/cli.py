"""The `flipbench` command: a thin layer over `flipbench.api`."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.exceptions import TyperException

from flipbench import api
from flipbench.config import DEFAULT_DB, RunConfig, load_env_file
from flipbench.errors import FlipbenchError, RunInterrupted
from flipbench.progress import note
from flipbench.results import MAX_REPLY_COST, RunResults
from flipbench.safety import clean_json, csv_cell, mask_secrets, scrub, terminal_safe

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure whether a language model can follow a requested probability distribution.",
)
# No markup or emoji codes: text from a journal, a server or the user (`[/bold]`, `[link=…]`,
# `:smile:`) is printed as it is. Styled output is built as `Text`.
out = Console(soft_wrap=True, markup=False, emoji=False)

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="FLIPBENCH_DB", help="journal file (SQLite)", show_default=True),
]


ERROR_LINE_CHARS = 2000  # an error line is cut here (a server's message can be any length)
#: Options whose flag is not the field name with dashes (RunConfig field -> CLI flag).
_FLAGS = {"timeout_s": "--timeout", "p_values": "--p", "model_options": "-M"}


def plain(value: object) -> Text:
    """Stored or received text for the terminal: printed literally (no markup), with control
    characters and escape sequences made visible and credentials masked."""
    return Text(terminal_safe(mask_secrets(str(value))))


def _fail(message: str) -> typer.Exit:
    print(f"error: {scrub(message, ERROR_LINE_CHARS)}", file=sys.stderr)
    return typer.Exit(code=2)


def _validation_line(exc: ValidationError) -> str:
    """The first problem, named by the flag that set it: `--n: Input should be …`."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    message = str(first["msg"]).removeprefix("Value error, ")
    if exc.title != "RunConfig" or not loc:
        where = ".".join(loc)
        return f"{exc.title} {where}: {message}" if where else f"{exc.title}: {message}"
    flag = _FLAGS.get(loc[0], "--" + loc[0].replace("_", "-"))
    return message if message.startswith(flag + " ") else f"{flag}: {message}"


@contextmanager
def user_errors(env_file: Path | None = None) -> Iterator[None]:
    """What every long-running command shares: load the .env file, then turn a user error into
    one `error:` line and exit code 2, and Ctrl-C into the resume hint and exit code 130."""
    try:
        if env_file is not None:
            load_env_file(env_file)
        yield
    except RunInterrupted as exc:
        print(scrub(str(exc), ERROR_LINE_CHARS), file=sys.stderr)
        raise typer.Exit(code=130) from None
    except ValidationError as exc:
        raise _fail(_validation_line(exc)) from None
    except FlipbenchError as exc:
        raise _fail(str(exc)) from None


def _num(x: float | None, digits: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _rows(results: RunResults) -> list[dict[str, Any]]:
    exact = results.run.mode == "exact"
    rows = []
    for c in results.conditions:
        row: dict[str, Any] = {
            "condition": c.condition,
            "p": c.p,
            "rate": c.rate,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "n_valid": c.n_valid,
            "n_total": c.n_total,
            "invalid_share": c.invalid_share,
        }
        if exact:
            row["coverage"] = c.coverage
        rows.append(row)
    return rows


def print_results(results: RunResults, fmt: str = "table") -> None:
    """Per condition p, rate, interval, counts (and coverage in exact mode); then S."""
    if fmt == "json":  # stored strings masked; json.dumps escapes every control character
        print(json.dumps(clean_json(results.to_dict()), indent=2, allow_nan=False))
        return
    rows = _rows(results)
    lo, hi = results.s_ci
    if fmt == "csv":
        fields = [*CSV_FIELDS, *(["coverage"] if results.run.mode == "exact" else [])]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        s_row = {"condition": "S", "rate": results.s, "ci_low": lo, "ci_high": hi}
        for row in [*rows, s_row]:  # text cells cannot start a spreadsheet formula
            writer.writerow({k: csv_cell(mask_secrets(v) if isinstance(v, str) else v)
                             for k, v in row.items()})  # fmt: skip
        print(buffer.getvalue(), end="")
        return
    run = results.run
    table = Table(
        title=plain(
            f"{run.run_id}  {run.experiment}  {run.model}  {run.mode}  [{run.display_status}]"
        )
    )
    experiment = results.experiment
    label = "p %" if experiment.builder_kind == "flip" else "condition"
    rate = f'P("{experiment.first}")' if experiment.first else "rate"
    if experiment.kind in ("d-flips", "chained"):
        rate = "Mean(r)"
    elif experiment.kind in ("word-pair",):
        rate = "first word"
    for name in (label, rate, "ci_low", "ci_high", "n_valid", "n_total", "invalid"):
        table.add_column(plain(name), justify="right")
    if run.mode == "exact":
        table.add_column("coverage", justify="right")
    for c, row in zip(results.conditions, rows, strict=True):
        invalid = ", ".join(f"{k} {v}" for k, v in sorted(c.invalid.items())) or "0"
        name = c.value if label == "p %" else c.condition
        cells = [name, _num(c.rate), _num(c.ci_low), _num(c.ci_high),
                 str(c.n_valid), str(c.n_total), invalid]  # fmt: skip
        if "coverage" in row:
            cells.append(_num(c.coverage, 4))
        table.add_row(*map(plain, cells))
    out.print(table)
    interval = "" if run.mode == "exact" or math.isnan(lo) else f"  95% CI [{lo:.3f}, {hi:.3f}]"
    if not math.isnan(results.s):
        out.print(f"S = {_num(results.s)}{interval}")
    for line in results.lines:
        out.print(plain(line))
    cost = cost_line(results)
    if cost:
        out.print(cost)
    if run.message:
        out.print(plain(f"note: {run.message}"))


CSV_FIELDS = ["condition", "p", "rate", "ci_low", "ci_high", "n_valid", "n_total", "invalid_share"]


def cost_line(results: RunResults) -> str | None:
    """What the run's replies cost. Replies that reported an unusable cost (negative, infinite,
    NaN, unreadable, above $1M) are said so; when some of them could not be counted at all, the
    total is a lower bound and shows as `≥ $…`. Never a negative amount."""
    if results.cost_usd is None and not results.cost_unusable:
        return None
    k, uncounted = results.cost_unusable, results.cost_uncounted
    line = f"cost: {'≥ ' if uncounted else ''}${max(results.cost_usd or 0.0, 0.0):,.4f}"
    line += f" over {results.n_requests:,} requests"
    if not k:
        return line
    line += (
        f" ({k:,} repl{'y' if k == 1 else 'ies'} reported an unusable cost: negative, infinite,"
        f" NaN, unreadable or above ${MAX_REPLY_COST:,.0f};"
    )
    if uncounted:
        return line + f" {uncounted:,} of them not counted)"
    return line + " counted as $0 or as estimated)"


def _model_options(pairs: list[str]) -> dict[str, Any]:
    """`-M key=value` pairs; values are JSON when they parse as JSON, else strings."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FlipbenchError(f"-M expects key=value, got {pair[:60]!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
        except RecursionError:
            raise FlipbenchError(
                f"-M {key.strip()[:40]}: the JSON value is nested too deep"
            ) from None
    return options


def _report(outcome: api.RunOutcome, *, figures: bool = True) -> None:
    if outcome.results is not None:
        print_results(outcome.results)
    for path in outcome.figures if figures else []:
        out.print(plain(f"figure: {path}"))
    if outcome.retries:
        retries = ", ".join(f"{k} {v}" for k, v in sorted(outcome.retries.items()))
        out.print(plain(f"retries: {retries}"))
    if outcome.status != "complete":
        out.print(plain(f"run {outcome.run_id} is {outcome.status}: {outcome.message or ''}"))


@app.command()
def demo(db: DbOption = Path(DEFAULT_DB)) -> None:
    """Run the single flip on the embedded offline model (exact mode) and draw the curve."""
    with user_errors():
        outcome = api.demo(db, progress=True)
    _report(outcome, figures=False)
    results = outcome.results
    assert results is not None
    rates = [c.rate for c in results.conditions if not math.isnan(c.rate)]
    out.print()
    out.print(
        "What S means: 0 = the rate follows p exactly, 1 = always the likelier side (a step at"
        " 50 %), 2 = the opposite of what was asked."
    )
    out.print(Text.assemble(("figure:", "bold"), " ", plain(outcome.figures[0])))
    span = max(rates) - min(rates) if rates else float("nan")
    verdict = "it ignores p" if span < 0.1 else "it moves with p"
    out.print(
        f'How to read it: the dots are P("1") for each requested p (exact next-token '
        f'probabilities, renormalised over "0"/"1"); they span {_num(min(rates))}–'
        f"{_num(max(rates))} while p goes 0 → 1, so {verdict}. The dashed diagonal is a "
        "perfect coin."
    )
    out.print(
        "Same experiment on an API model:  "
        "flipbench run single-flip --model openrouter/openai/gpt-5 --n 100"
    )


@app.command()
def run(
    experiment: Annotated[str | None, typer.Argument(help="experiment name")] = None,
    model: Annotated[str, typer.Option("--model", "-m")] = "local/smollm2",
    n: Annotated[int | None, typer.Option("--n", help="valid samples per condition")] = None,
    grid: Annotated[str | None, typer.Option(help="named grid (default, fine, zoom…)")] = None,
    p: Annotated[
        str | None, typer.Option("--p", help="explicit p values in percent, e.g. 10,30,49.5")
    ] = None,
    mode: Annotated[str, typer.Option(help="sample | exact")] = "sample",
    d: Annotated[int | None, typer.Option("--d", help="flips per reply (d-flips)")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    prompt: Annotated[str | None, typer.Option(help="prompt template with {p} and {q}")] = None,
    system_prompt: Annotated[str | None, typer.Option()] = None,
    constrained: Annotated[bool, typer.Option(help="enforce the answer space")] = False,
    max_concurrency: Annotated[
        int | None, typer.Option(help="requests in flight (default 4 local, 64 API)")
    ] = None,
    max_attempts_factor: Annotated[float, typer.Option(help="attempt cap, × N")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="base of per-sample seeds")] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="stop cleanly once API calls cost this many USD")
    ] = None,
    timeout: Annotated[float, typer.Option(help="per-request timeout, seconds")] = 60.0,
    max_retries: Annotated[int, typer.Option(help="retries of one request")] = 8,
    model_option: Annotated[
        list[str] | None,
        typer.Option("--model-option", "-M", help="extra request field key=value (JSON value)"),
    ] = None,
    answer_from_reasoning: Annotated[
        bool, typer.Option(help="empty reply: take the last answer in the reasoning (recorded)")
    ] = False,
    fallback_to_sample: Annotated[
        bool, typer.Option(help="sample if the endpoint gives no top_logprobs for --mode exact")
    ] = False,
    env_file: Annotated[
        Path | None, typer.Option(help=".env file with API keys (the environment wins)")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="continue run ID")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="with --resume: take over a run marked running by a live process that does not"
            " hold its lock (a reused pid, a container's pid 1); never one that is really running",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Run an experiment (or --resume a stopped run)."""
    with user_errors(env_file):
        if resume is not None:
            if experiment is not None:
                raise FlipbenchError("--resume continues a stored run; give no experiment")
            outcome = api.resume_run(
                resume, db, progress=progress, max_cost=max_cost, notify=note,
                max_concurrency=max_concurrency, force=force,
            )  # fmt: skip
        else:
            if force:
                raise FlipbenchError("--force applies to --resume ID only")
            if experiment is None:
                from flipbench.tasks import EXPERIMENTS

                known = ", ".join(EXPERIMENTS)
                raise FlipbenchError(f"name an experiment ({known}) or pass --resume ID")
            if mode not in ("sample", "exact"):
                raise FlipbenchError(f"unknown mode {mode!r} (use sample or exact)")
            config = RunConfig(
                experiment=experiment,
                model=model,
                mode=mode,  # type: ignore[arg-type]
                n=n,
                grid=grid,
                d=d,
                p_values=[v for v in p.split(",") if v.strip()] if p is not None else None,
                temperature=temperature,
                max_tokens=max_tokens,
                prompt=prompt,
                system_prompt=system_prompt,
                constrained=constrained,
                max_concurrency=max_concurrency,
                max_attempts_factor=max_attempts_factor,
                seed=seed,
                max_cost=max_cost,
                timeout_s=timeout,
                max_retries=max_retries,
                model_options=_model_options(model_option or []),
                answer_from_reasoning=answer_from_reasoning,
                fallback_to_sample=fallback_to_sample,
                run_id=run_id,
            )
            outcome = api.start_run(config, db, progress=progress, notify=note)
    _report(outcome)


@app.command("runs")
def runs_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """List the runs in the journal."""
    try:
        if fmt not in ("table", "json"):
            raise FlipbenchError(f"unknown format {fmt!r} (use table or json)")
        rows = api.list_runs(db)
    except FlipbenchError as exc:
        raise _fail(str(exc)) from None
    fields = ("run_id", "experiment", "model", "mode", "display_status", "created_at")
    if fmt == "json":
        listing = [{f.removeprefix("display_"): getattr(r, f) for f in fields} for r in rows]
        print(json.dumps(clean_json(listing), indent=2))
        return
    table = Table()
    for name in ("id", "experiment", "model", "mode", "status", "created"):
        table.add_column(name)
    for r in rows:
        table.add_row(*(plain(getattr(r, f)) for f in fields))
    out.print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="run id (see `flipbench runs`)")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Per-condition rates with 95 % intervals, then S."""
    try:
        if fmt not in ("table", "csv", "json"):
            raise FlipbenchError(f"unknown format {fmt!r} (use table, csv or json)")
        results = api.run_results(run_id, db)
    except FlipbenchError as exc:
        raise _fail(str(exc)) from None
    print_results(results, fmt)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="run id")],
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Write one row per sample (CSV or Parquet)."""
    try:
        path = api.export(run_id, fmt, output, db)
    except FlipbenchError as exc:
        raise _fail(str(exc)) from None
    out.print(plain(f"wrote {path}"))


def main() -> None:
    """Entry point: usage errors (`--n abc`, an unknown option) are one `error:` line and exit
    code 2, like every other bad input, not a framed box."""
    from flipbench import cli_battery  # noqa: F401  (registers bench, leaderboard, import)

    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `flipbench`: the help, as asked
            print(message)
            sys.exit(0)
        known = typer.main.get_command(app).commands  # type: ignore[attr-defined]
        command = next((a for a in sys.argv[1:2] if a in known), "")
        hint = f" (see `flipbench {command} --help`)" if command else " (see `flipbench --help`)"
        print(f"error: {scrub(message, ERROR_LINE_CHARS)}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
