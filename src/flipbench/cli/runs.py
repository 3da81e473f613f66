"""Commands on single runs: `demo`, `run`, `runs`, `show`, `export`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
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
from flipbench.cli.output import SHOW_FORMATS, number_text, print_results, report_outcome
from flipbench.config import DEFAULT_DB, RunConfig
from flipbench.errors import FlipbenchError
from flipbench.progress import note
from flipbench.tasks import EXPERIMENTS


@app.command()
def demo(db: DbOption = Path(DEFAULT_DB)) -> None:
    """Run the single flip on the embedded offline model (exact mode) and draw the curve."""
    from flipbench import api

    with user_errors():
        outcome = api.demo(db, progress=True)
    report_outcome(outcome, figures=False)
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
        f'How to read it: the dots are P("1") for each requested p (the exact probability '
        f'that the reply is "1", renormalised over "0"/"1"); they span {number_text(min(rates))}–'
        f"{number_text(max(rates))} while p goes 0 → 1, so {verdict}. The dashed diagonal is a "
        "perfect coin."
    )
    out.print(
        "Same experiment on an API model:  "
        "flipbench run single-flip --model openrouter/openai/gpt-5 --n 100"
    )


#: What `--resume` may set: how a stopped run goes on (budget, concurrency, takeover, keys,
#: progress, journal), never what it asks; every other option would change the run.
RESUME_OPTIONS = frozenset(
    {
        "experiment",
        "resume",
        "max_cost",
        "max_concurrency",
        "threads",
        "force",
        "env_file",
        "progress",
        "db",
    }
)


def changed_on_resume(ctx: typer.Context) -> list[str]:
    """The options given (on the command line or through their variable) that `--resume`
    cannot honour: the stored run defines them, and ignoring them silently misleads."""
    given = []
    for param in ctx.command.params:
        if param.name is None or param.name in RESUME_OPTIONS:
            continue
        source = ctx.get_parameter_source(param.name)  # typer's own click: compared by name
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.append(max(param.opts, key=len))
    return given


@app.command()
def run(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        # Not the registry's names: listing them means building every grid, on every start.
        typer.Argument(
            help="an experiment such as single-flip, d-flips, ternary or word-bias"
            " (`flipbench experiments` lists them all)"
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="local/smollm2, local/<file.gguf>, openrouter/<author>/<slug>,"
            " openai-api/<name>/<model> or hf/<hub id, directory or file.gguf>"
            " (docs/providers.md)",
        ),
    ] = "local/smollm2",
    n: Annotated[
        int | None,
        typer.Option("--n", help="valid samples per condition [default: the experiment's, 100]"),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option(
            help="named grid of the experiment (`flipbench experiments` lists them)"
            " [default: its default grid]"
        ),
    ] = None,
    p: Annotated[
        str | None, typer.Option("--p", help="explicit p values in percent, e.g. 10,30,49.5")
    ] = None,
    mode: Annotated[str, typer.Option(help="sample | exact")] = "sample",
    d: Annotated[int | None, typer.Option("--d", help="flips per reply (d-flips)")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="always sent [default: the experiment's, 1.0]")
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(help="reply budget [default: the experiment's; at least 1024 on API models]"),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="prompt template with {p} and {q}")] = None,
    system_prompt: Annotated[str | None, typer.Option()] = None,
    constrained: Annotated[bool, typer.Option(help="enforce the answer space")] = False,
    intervention: Annotated[
        str,
        typer.Option(
            help="how the model is asked to randomise (`flipbench interventions` lists them;"
            " docs/interventions.md)"
        ),
    ] = "direct",
    max_concurrency: Annotated[
        int | None, typer.Option(help="requests in flight (default 4 local, 64 API)")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads of a local model (fewer when other processes share the cores)"
            " [default: the cores this process may use]; not for API models"
        ),
    ] = None,
    max_attempts_factor: Annotated[float, typer.Option(help="attempt cap, × N")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="base of per-sample seeds")] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="stop cleanly once API calls cost this many USD")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="per-request timeout, seconds (local models: at least 120)")
    ] = 60.0,
    max_retries: Annotated[int, typer.Option(help="retries of one request")] = 8,
    model_option: Annotated[
        list[str] | None,
        typer.Option("--model-option", "-M", help="extra request field key=value (JSON value)"),
    ] = None,
    backend_option: Annotated[
        list[str] | None,
        typer.Option(
            "--backend-option",
            "-B",
            help="the backend's own argument key=value, not sent to the model"
            " (hf models: dtype=float32|bfloat16|float16, device=cpu|cuda, batch_size=16)",
        ),
    ] = None,
    answer_from_reasoning: Annotated[
        bool, typer.Option(help="empty reply: take the last answer in the reasoning (recorded)")
    ] = False,
    fallback_to_sample: Annotated[
        bool, typer.Option(help="sample if the endpoint gives no top_logprobs for --mode exact")
    ] = False,
    first_token: Annotated[
        bool,
        typer.Option(help="games, --mode exact: the first token with no reasoning (not the game)"),
    ] = False,
    env_file: Annotated[
        Path | None, typer.Option(help=".env file with API keys (the environment wins)")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="name the run [default: date-experiment-hex]")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="continue run ID as it was started (only --max-cost, --max-concurrency,"
            " --threads, --force, --env-file may be given with it)",
        ),
    ] = None,
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
    from flipbench import api

    with user_errors(env_file):
        if resume is not None:
            if experiment is not None:
                raise FlipbenchError("--resume continues a stored run; give no experiment")
            if changed := changed_on_resume(ctx):
                raise FlipbenchError(
                    f"--resume continues run {resume} as it was started; {', '.join(changed)}"
                    f" would change it (a resume takes only --max-cost, --max-concurrency,"
                    f" --threads, --force, --env-file and --db); start a new run to change them"
                )
            outcome = api.resume_run(
                resume, db, progress=progress, max_cost=max_cost, notify=note,
                max_concurrency=max_concurrency, force=force, threads=threads,
            )  # fmt: skip
        else:
            if force:
                raise FlipbenchError("--force applies to --resume ID only")
            if experiment is None:
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
                intervention=intervention,
                max_concurrency=max_concurrency,
                threads=threads,
                max_attempts_factor=max_attempts_factor,
                seed=seed,
                max_cost=max_cost,
                timeout_s=timeout,
                max_retries=max_retries,
                model_options=parse_model_options(model_option or []),
                backend_options=parse_model_options(backend_option or [], flag="-B"),
                answer_from_reasoning=answer_from_reasoning,
                fallback_to_sample=fallback_to_sample,
                first_token=first_token,
                run_id=run_id,
            )
            outcome = api.start_run(config, db, progress=progress, notify=note)
    report_outcome(outcome)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="run id (see `flipbench runs`)")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table | json (every number) | csv (one row per condition) | summary-csv (S,"
            " its interval, noise floor, grid coverage: one row per value)",
        ),
    ] = "table",
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Per-condition rates with 95 % intervals, then S (labelled partial, with the share of the
    grid it stands on, when the run did not complete)."""
    from flipbench import api

    try:
        if fmt not in SHOW_FORMATS:
            raise FlipbenchError(f"unknown format {fmt!r} (use {', '.join(SHOW_FORMATS)})")
        results = api.run_results(run_id, db)
    except FlipbenchError as exc:
        raise usage_failure(str(exc)) from None
    print_results(results, fmt)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="run id")],
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Write one row per sample (CSV or Parquet)."""
    from flipbench import api

    try:
        path = api.export(run_id, fmt, output, db)
    except FlipbenchError as exc:
        raise usage_failure(str(exc)) from None
    out.print(plain(f"wrote {path}"))
