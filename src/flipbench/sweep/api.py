"""A sweep's Python API: choose the models, plan, start, resume, rank.

from flipbench.sweep.api import choose_models, start_sweep
selection = choose_models(include=["openai/*"])
outcome = start_sweep(SweepOptions(n=50, max_cost=5.0), selection, notify=print)

The plan is made and handed to `notify` before the sweep is recorded or any call is sent;
`dry_run` stops there. The catalogue is read once (one `GET /models`) and each chosen model's
entry is stored with the sweep, so that a resume prices and checks the same entries.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flipbench.config import default_db_path
from flipbench.errors import FlipbenchError
from flipbench.interventions import get_intervention
from flipbench.providers.keys import read_keys
from flipbench.providers.openai_api import OPENROUTER_URL, OpenRouterBackend
from flipbench.providers.openai_compat import ChatClient
from flipbench.store import Journal, NoJournal, RunLock, check_writable
from flipbench.sweep.catalogue import (
    DEFAULT_EXCLUDE,
    Selection,
    for_feature,
    models_from_names,
    read_entry,
    select_models,
)
from flipbench.sweep.covariates import covariates_of, load_rows
from flipbench.sweep.journal import FINAL_STATES, MATRIX_KIND, SweepJournal, SweepRow
from flipbench.sweep.plan import SweepPlan, plan_sweep
from flipbench.sweep.ranking import SweepRanking, rank_sweep
from flipbench.sweep.regression import ModelDraws, SweepRegression, fit_regression
from flipbench.sweep.runner import Notify, SweepOptions, SweepRunner, new_sweep_id, run_id_of
from flipbench.tasks import get_experiment

if TYPE_CHECKING:
    from flipbench.report.sweep_view import SweepView

__all__ = [
    "DEFAULT_EXCLUDE", "SweepOptions", "SweepOutcome", "choose_models", "get_sweep", "plan_for",
    "resume_sweep", "start_sweep", "sweep_ranking", "sweep_regression", "sweep_report_view",
    "sweeps",
]  # fmt: skip


@dataclass
class SweepOutcome:
    """What a sweep left behind (the plan only, for a dry run)."""

    sweep_id: str | None
    status: str
    plan: SweepPlan
    sweep: SweepRow | None = None


#: What a sweep keeps of each chosen model's catalogue entry: prices and parameters to plan and
#: check a resume, context length and creation date for the regression's covariates.
_STORED_FIELDS = ("pricing", "supported_parameters", "context_length", "created")


def _silent(text: str) -> None:
    """Notices go nowhere unless the caller asks for them."""


async def _read_catalogue() -> list[Any]:
    keys = read_keys(os.environ, "OPENROUTER_API_KEY")
    if not keys:
        raise FlipbenchError(
            "OPENROUTER_API_KEY is not set (nor OPENROUTER_API_KEY_0 … _9); export it, or pass"
            " --env-file FILE"
        )
    base = (os.environ.get("OPENROUTER_BASE_URL") or "").strip() or OPENROUTER_URL
    client = ChatClient(base, timeout_s=60.0, service="OpenRouter")
    await client.start()
    try:  # any key that works: one may be revoked or out of credit
        data = None
        for key in keys:
            data = await client.get_json("models", api_key=key.value)
            if data is not None:
                break
    finally:
        await client.close()
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FlipbenchError(f"could not read the model catalogue at {base}/models")
    return entries


def choose_models(
    names: list[str] | None = None,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    free: bool = False,
    require: list[str] | None = None,
    intervention: str = "direct",
) -> tuple[Selection, dict[str, dict[str, Any]]]:
    """The models to sweep (named ones, or the catalogue filtered) and their catalogue entries;
    with an `intervention` that sends a request feature (structured output, tools, reasoning)
    only the models whose catalogue entry lists it."""
    needs = get_intervention(intervention).needs  # an unknown name fails before any request
    catalogue = asyncio.run(_read_catalogue())
    if names:
        selection = models_from_names(names, catalogue)
    else:
        selection = select_models(
            catalogue, include=include or (), free=free, require=require or (),
            exclude=DEFAULT_EXCLUDE if exclude is None else exclude,
        )  # fmt: skip
    selection = for_feature(selection, needs, intervention)
    chosen = {m.id for m in selection.models}
    entries = {
        e["id"]: {k: e[k] for k in _STORED_FIELDS if k in e}
        for e in catalogue
        if isinstance(e, dict) and e.get("id") in chosen
    }
    return selection, entries


def plan_for(options: SweepOptions, selection: Selection) -> SweepPlan:
    experiment = get_experiment(options.experiment).resolve(
        grid=options.grid, n=options.n, intervention=get_intervention(options.intervention)
    )
    tokens = max(experiment.max_tokens, OpenRouterBackend.default_max_tokens or 0)
    return plan_sweep(
        selection.models, experiment, tokens, options.max_cost, options.max_attempts_factor
    )


def start_sweep(
    options: SweepOptions,
    selection: Selection,
    entries: dict[str, dict[str, Any]],
    db: Path | None = None,
    *,
    notify: Notify = _silent,
    dry_run: bool = False,
) -> SweepOutcome:
    """Plan (to `notify`), then record and run the sweep; `dry_run` stops after the plan."""
    db = db or default_db_path()
    selection = for_feature(selection, get_intervention(options.intervention).needs,
                            options.intervention)  # fmt: skip
    if not selection.models:
        raise FlipbenchError("no model to sweep (see the reasons with --dry-run)")
    plan = plan_for(options, selection)
    for line in plan.lines():
        notify(line)
    if dry_run:
        return SweepOutcome(None, "planned", plan)
    check_writable(db)
    sweep_id = new_sweep_id()
    models = [(m.id, run_id_of(sweep_id, i)) for i, m in enumerate(selection.models)]
    config = {
        "options": options.model_dump(mode="json"),
        "catalogue": entries,
        "left_out": selection.left_out,
    }
    with Journal(db), SweepJournal(db) as journal:  # Journal(db): the core tables first
        journal.create_sweep(sweep_id, options.experiment, plan.n, options.max_cost, config, models)
        sweep = journal.get_sweep(sweep_id)
    notify(f"sweep {sweep_id}: {len(models)} models; resume with --resume {sweep_id}")
    return SweepOutcome(sweep_id, _execute(db, sweep, notify), plan, _get(db, sweep_id))


def _execute(db: Path, sweep: SweepRow, notify: Notify) -> str:
    """Run the sweep holding its own lock (beside its runs' locks), so that a second
    `--resume` of a sweep being run is refused at once instead of fighting over its models."""
    with RunLock(db, sweep.sweep_id):
        return asyncio.run(SweepRunner(db, sweep, notify).run())


def resume_sweep(
    sweep_id: str, db: Path | None = None, *, max_cost: float | None = None,
    notify: Notify = _silent,
) -> SweepOutcome:  # fmt: skip
    """Continue the unfinished models of a sweep (a larger budget with `max_cost`)."""
    db = db or default_db_path()
    sweep = _get(db, sweep_id)
    with RunLock(db, sweep_id):  # refused at once, before anything changes, if it is running
        pass
    if max_cost is not None:
        options = SweepOptions(**{**sweep.config["options"], "max_cost": max_cost})
        with SweepJournal(db) as journal:
            sweep = journal.raise_budget(sweep, options.model_dump(mode="json"), max_cost)
    plan = plan_for(SweepOptions(**sweep.config["options"]), _remaining(sweep))
    for line in plan.lines():
        notify(line)
    return SweepOutcome(sweep_id, _execute(db, sweep, notify), plan, _get(db, sweep_id))


def _remaining(sweep: SweepRow) -> Selection:
    """The models a resume still runs, priced from the entries stored with the sweep."""
    entries = sweep.config.get("catalogue", {})
    models = []
    for m in sweep.models:
        if m.state not in FINAL_STATES:
            entry = read_entry({"id": m.model, **entries.get(m.model, {})})
            if entry is not None:
                models.append(entry)
    return Selection(models)


def get_sweep(sweep_id: str, db: Path | None = None) -> SweepRow:
    """A stored sweep, or matrix (`experiment` reads `matrix`: both live in the sweep tables)."""
    db = db or default_db_path()
    try:
        with SweepJournal(db, create=False) as journal:
            return journal.get_sweep(sweep_id)
    except NoJournal:
        raise FlipbenchError(f"no sweep {sweep_id!r}: there is no journal at {db}") from None


def _get(db: Path, sweep_id: str) -> SweepRow:
    """A stored sweep; a matrix is refused with the command that reads it."""
    row = get_sweep(sweep_id, db)
    if row.experiment == MATRIX_KIND:
        raise FlipbenchError(
            f"{sweep_id} is a matrix, not a sweep: flipbench matrix show {sweep_id}"
            f" (or flipbench matrix --resume {sweep_id})"
        )
    return row


def sweep_regression(
    sweep_id: str, db: Path | None = None, *, covariates: Path | None = None,
    terms: list[str] | None = None,
) -> SweepRegression:  # fmt: skip
    """The hierarchical logistic regression of a sweep's draws on its models' covariates
    (catalogue entries stored with the sweep, then `covariates`, then the starter file)."""
    rows = load_rows(covariates)  # a malformed file is refused before the journal is read
    ranking = sweep_ranking(sweep_id, db)
    entries = _get(db or default_db_path(), sweep_id).config.get("catalogue", {})
    draws = [
        ModelDraws(model=r.model, ones=round(r.mean * r.valid), n=r.valid) for r in ranking.ranked
    ] + [ModelDraws(model=u.model, ones=0, n=0) for u in ranking.unranked]
    covs = [covariates_of(d.model, entries.get(d.model, {}), rows) for d in draws]
    return fit_regression(sweep_id, draws, covs, terms)


def sweep_ranking(sweep_id: str, db: Path | None = None) -> SweepRanking:
    """Every model's mean, bias and interval, ranked (read back from the journal)."""
    db = db or default_db_path()
    sweep = _get(db, sweep_id)
    with Journal(db, create=False) as journal:
        return rank_sweep(journal, sweep)


def sweeps(db: Path | None = None) -> list[tuple[str, str, str, int]]:
    """(id, status, created, models) of every sweep in the journal."""
    db = db or default_db_path()
    try:
        with SweepJournal(db, create=False) as journal:
            return journal.list_sweeps()
    except NoJournal:
        return []


def sweep_report_view(sweep_id: str, db: Path | None = None) -> SweepView:
    """The sweep's section of the HTML report: ranking, dot plot, unranked models, effects."""
    from flipbench.sweep.report import sweep_view  # matplotlib loads here

    ranking = sweep_ranking(sweep_id, db)
    try:
        regression, why_not = sweep_regression(sweep_id, db), None
    except FlipbenchError as exc:  # too few models or covariates: the page says so
        regression, why_not = None, str(exc)
    return sweep_view(ranking, regression, why_not)
