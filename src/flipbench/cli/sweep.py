"""`flipbench sweep`: one experiment over many models, with a plan and one budget first.

`flipbench sweep [options]` chooses the models (the catalogue filtered, `--models-file`, or
`-m` names), prints the plan before any call, and runs them side by side; `--resume ID`
continues one; `sweep show ID` prints the ranking (or writes it as JSON) and draws the dot
plot; `sweep regress ID` fits the regression on the models' covariates and draws the effect
plot; `sweep list` lists the sweeps. The sweep machinery loads only inside these commands.
"""

from __future__ import annotations

import json
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
    from flipbench.sweep.ranking import ModelRank, SweepRanking

sweep_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    help="Run one experiment over many models (the catalogue filtered, a file or a list),"
    " with the plan and one --max-cost first; `sweep show ID` ranks them.",
)
app.add_typer(sweep_app, name="sweep")

Many = Annotated[list[str] | None, typer.Option()]


def _say(text: str) -> None:
    out.print(plain(text))


#: What `--resume` may set: the budget, the key file and the journal; the stored sweep defines
#: everything else, and an option silently ignored would mislead.
_RESUME_OPTIONS = frozenset({"resume", "max_cost", "env_file", "db"})


@sweep_app.callback()
def sweep(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="author/slug (repeatable)")
    ] = None,
    models_file: Annotated[
        Path | None, typer.Option(help="one model per line (# comments)")
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="glob of catalogue ids to keep, e.g. 'openai/*'")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="glob of catalogue ids to leave out (replaces the default list)"),
    ] = None,
    free: Annotated[bool, typer.Option(help="include :free variants")] = False,
    require: Annotated[
        list[str] | None, typer.Option(help="a parameter the model must list, e.g. logprobs")
    ] = None,
    experiment: Annotated[str, typer.Option(help="the experiment each model runs")] = "fair-coin",
    intervention: Annotated[
        str,
        typer.Option(
            help="how every model is asked (`flipbench interventions`); structured, tool-call"
            " and reasoning-* keep only the models whose catalogue entry lists that parameter"
        ),
    ] = "direct",
    n: Annotated[int | None, typer.Option("--n", help="valid samples per condition")] = None,
    grid: Annotated[str | None, typer.Option(help="named grid of the experiment")] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="USD for the whole sweep; it stops cleanly there")
    ] = None,
    max_concurrency: Annotated[int, typer.Option(help="requests in flight over all models")] = 64,
    per_model: Annotated[int, typer.Option(help="requests in flight per model (adaptive)")] = 8,
    models_at_once: Annotated[int, typer.Option(help="models run side by side")] = 32,
    timeout: Annotated[float, typer.Option(help="per-request timeout (s)")] = 60.0,
    dry_run: Annotated[bool, typer.Option(help="print the plan and stop")] = False,
    resume: Annotated[
        str | None, typer.Option(help="continue sweep ID (only its unfinished models)")
    ] = None,
    env_file: Annotated[Path | None, typer.Option(help=".env file with the API key")] = None,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Run one experiment over many models; see `flipbench sweep --help`."""
    if ctx.invoked_subcommand is not None:
        return
    from flipbench.sweep import api
    from flipbench.sweep.catalogue import read_model_file
    from flipbench.sweep.runner import SweepOptions

    if resume is not None and (changed := options_given(ctx, _RESUME_OPTIONS)):
        raise usage_failure(
            f"--resume continues sweep {resume} as it was planned; {', '.join(changed)} cannot"
            " change (only --max-cost, --env-file and --db can)"
        )
    with user_errors(env_file):
        if resume is not None:
            outcome = api.resume_sweep(resume, db, max_cost=max_cost, notify=_say)
        else:
            options = SweepOptions(
                experiment=experiment, intervention=intervention, n=n, grid=grid,
                max_cost=max_cost,
                global_cap=max_concurrency, per_model=per_model, models_at_once=models_at_once,
                timeout_s=timeout,
            )  # fmt: skip
            names = list(model or [])
            if models_file is not None:
                names += read_model_file(models_file)
            selection, entries = api.choose_models(
                names or None, include=include, exclude=exclude, free=free, require=require,
                intervention=intervention,
            )  # fmt: skip
            _say(f"models: {len(selection.models)} chosen, {len(selection.left_out)} left out")
            if dry_run:
                for left, why in sorted(selection.left_out.items()):
                    _say(f"  left out {left}: {why}")
            outcome = api.start_sweep(options, selection, entries, db, notify=_say, dry_run=dry_run)
    if outcome.sweep is None:
        return
    skipped = [m for m in outcome.sweep.models if m.state == "skipped"]
    _say(f"sweep {outcome.sweep_id}: {outcome.status}; {len(skipped)} model(s) skipped")
    if outcome.sweep.message:
        _say(outcome.sweep.message)
    _say(f"ranking: flipbench sweep show {outcome.sweep_id}")


def _row(r: ModelRank) -> str:
    noise = ("≈p" if r.unbiased_within_noise else "  ") + (" ≈next" if r.ties_next else "      ")
    latency = f"{r.latency_s:.2f}s" if r.latency_s is not None else "-"
    return (
        f"{r.rank:>4} {r.group:>4} {r.model[:44]:<44} {r.mean:5.2f} [{r.mean_low:.2f},"
        f" {r.mean_high:.2f}] {r.bias:5.2f} [{r.bias_low:.2f}, {r.bias_high:.2f}] {noise}"
        f" {r.valid:>5} {r.valid_share:5.0%} ${r.cost:<9.4g} {latency}"
    )


def _print_ranking(ranking: SweepRanking, top: int) -> None:
    _say(
        f"sweep {ranking.sweep_id} ({ranking.experiment}, N={ranking.n}): {ranking.status};"
        f" {len(ranking.ranked)} ranked, {len(ranking.unranked)} not; spent ${ranking.spent:.4f}"
        + (f" of ${ranking.max_cost:g}" if ranking.max_cost is not None else "")
    )
    if ranking.message:
        _say(ranking.message)
    head = (
        "rank grp  model                                         mean  95% interval  bias"
        "  interval     valid share cost       latency"
    )
    for title, rows in (
        ("least biased", ranking.least(top)),
        ("most biased", ranking.most(top)),
    ):
        _say(f"\n{title} ({len(rows)} of {len(ranking.ranked)}):")
        _say(head)
        for r in rows:
            _say(_row(r))
    _say(
        "grp: tie group, the models the data cannot tell from the group's least biased one;"
        " ≈next: the bias intervals of this model and the next overlap (their order is noise);"
        " ≈p: the mean's interval holds the requested p (no bias shown)"
    )
    if ranking.unranked:
        _say("\nnot ranked:")
        for u in ranking.unranked:
            replies = f", {u.calls} replies journaled" if u.calls else ""
            _say(f"  {u.model}: {u.state}{replies}; {u.reason or 'no valid answer'}")


@sweep_app.command("show")
def show(
    sweep_id: Annotated[str, typer.Argument(help="a sweep id (`flipbench sweep list`)")],
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    top: Annotated[int, typer.Option(help="rows of each table")] = 20,
    figure: Annotated[bool, typer.Option(help="draw the dot plot")] = True,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """The ranking of a sweep: least and most biased models with intervals, the dot plot."""
    if fmt not in ("table", "json"):
        raise usage_failure(f"--format must be table or json, not {fmt!r}")
    from flipbench.api import run_dir
    from flipbench.sweep import api

    with user_errors():
        ranking = api.sweep_ranking(sweep_id, db)
    if fmt == "json":
        print(json.dumps(ranking.model_dump(mode="json"), indent=1))
        return
    _print_ranking(ranking, top)
    if figure:
        from flipbench.sweep.figure import dot_plot

        for path in dot_plot(ranking, run_dir(db, sweep_id)):
            _say(f"figure: {path}")


@sweep_app.command("regress")
def regress(
    sweep_id: Annotated[str, typer.Argument(help="a sweep id (`flipbench sweep list`)")],
    covariates: Annotated[
        Path | None,
        typer.Option(help="CSV of parameter counts, dense or moe (before the shipped one)"),
    ] = None,
    term: Annotated[
        list[str] | None,
        typer.Option(help="a covariate to fit (repeatable; default: every usable one)"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    figure: Annotated[bool, typer.Option(help="draw the effect plot")] = True,
    db: DbOption = Path(DEFAULT_DB),
) -> None:
    """Hierarchical logistic regression of the draws on the models' covariates: each effect on
    P(1) and on the models' spread (bias), posterior mean and 95 % interval; the effect plot."""
    if fmt not in ("table", "json"):
        raise usage_failure(f"--format must be table or json, not {fmt!r}")
    from flipbench.api import run_dir
    from flipbench.sweep import api

    with user_errors():
        reg = api.sweep_regression(sweep_id, db, covariates=covariates, terms=term)
    if fmt == "json":
        print(json.dumps(reg.model_dump(mode="json"), indent=1))
        return
    _say(f"sweep {reg.sweep_id}: {reg.models_used} models, {reg.draws} draws; {reg.method}")
    for on, title in (
        ("p1", "effects on the log-odds of P(1) (which way the models lean)"),
        ("spread", "effects on log σ, the spread of the models' log-odds (< 0: less biased)"),
    ):
        _say(f"\n{title}:\nterm                    mean     sd    95% interval       unit")
        extra = [reg.model_sd] if on == "spread" else []
        for e in [e for e in reg.effects if e.on == on] + extra:
            _say(
                f"{e.term[:20]:<20} {e.mean:7.3f} {e.sd:6.3f}  [{e.low:7.3f}, {e.high:7.3f}]"
                f"  {e.unit}"
            )
    for name, why in reg.left_out_terms.items():
        _say(f"term {name} left out: {why}")
    if reg.left_out_models:
        _say(f"{len(reg.left_out_models)} model(s) left out (unknown covariates, no valid draw)")
    for note in reg.notes:
        _say(f"note: {note}")
    if figure:
        from flipbench.sweep.effects_figure import effect_plot

        for path in effect_plot(reg, run_dir(db, sweep_id)):
            _say(f"figure: {path}")


@sweep_app.command("list")
def list_sweeps(db: DbOption = Path(DEFAULT_DB)) -> None:
    """Every sweep in the journal."""
    from flipbench.sweep import api

    with user_errors():
        rows = api.sweeps(db)
    for sweep_id, status, created, count in rows:
        _say(f"{sweep_id}  {status:<10} {count:>4} models  {created}")
