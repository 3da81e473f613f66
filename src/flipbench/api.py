"""The Python API: everything the CLI does, as functions.

from flipbench.api import start_run
from flipbench.config import RunConfig
outcome = start_run(RunConfig(model="local/smollm2", mode="exact"))
print(outcome.results.s)
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flipbench import __version__
from flipbench.config import RunConfig, default_db_path
from flipbench.errors import BudgetReached, ExactUnavailable, FlipbenchError, RunInterrupted
from flipbench.importers.base import ImportReport
from flipbench.plan import Plan, estimate_prompt_tokens
from flipbench.progress import reporter_for
from flipbench.providers import backend_class
from flipbench.providers.base import Backend
from flipbench.results import RunResults, compute_results
from flipbench.runner import EXACT_MAX_ATTEMPTS, Runner, RunSettings
from flipbench.store import (
    Journal,
    NoJournal,
    RunLock,
    RunRow,
    check_readable,
    check_writable,
    inside,
    validate_run_id,
)
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ResolvedExperiment

Notify = Callable[[str], None]

_LIBS = ("aiohttp", "numpy", "scipy", "pydantic", "xllamacpp")


@dataclass
class RunOutcome:
    """What a finished (or stopped) run left behind."""

    run_id: str
    status: str
    message: str | None
    results: RunResults | None
    figures: list[Path] = field(default_factory=list)
    db: Path = Path()
    retries: dict[str, int] = field(default_factory=dict)


def _silent(text: str) -> None:
    """The Python API's default: notices go nowhere unless the caller asks for them."""


def run_dir(db: Path, run_id: str) -> Path:
    """Where a run's figures and reports go: next to the journal, never outside its folder."""
    return inside(db.resolve().parent / "flipbench-runs", validate_run_id(run_id))


def new_run_id(experiment: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{experiment}-{secrets.token_hex(2)}"


def _package_versions() -> dict[str, Any]:
    versions: dict[str, Any] = {"flipbench": __version__, "python": platform.python_version()}
    for name in _LIBS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _resolve(config: RunConfig) -> tuple[ResolvedExperiment, type[Backend]]:
    """Validate everything a run needs before anything is written or started."""
    experiment = get_experiment(config.experiment).resolve(
        grid=config.grid,
        p_values=config.p_values,
        prompt=config.prompt,
        system_prompt=config.system_prompt,
        n=config.n,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        d=config.d,
    )
    cls = backend_class(config.model)
    if config.max_tokens is None and cls.default_max_tokens is not None:
        budget = max(experiment.max_tokens, cls.default_max_tokens)
        experiment = experiment.model_copy(update={"max_tokens": budget})
    if config.mode == "exact" and not experiment.exact:
        raise FlipbenchError(
            f"{experiment.name} answers are not one token of a known set; use --mode sample"
        )
    if config.mode == "exact" and not cls.supports_exact:
        raise FlipbenchError(f"{config.model} gives no next-token probabilities; use --mode sample")
    if config.mode == "exact" and config.constrained:
        raise FlipbenchError("--constrained applies to sampling; exact mode reads probabilities")
    if config.constrained and not cls.supports_constrained:
        raise FlipbenchError(f"{config.model} cannot constrain its answers")
    if config.run_id is not None:
        validate_run_id(config.run_id)
    return experiment, cls


def _check_db(db: Path) -> None:
    """Before a run starts anything: the journal can be read and written."""
    check_readable(db)
    if not db.resolve().parent.is_dir():
        raise FlipbenchError(f"directory {db.resolve().parent} for the journal does not exist")
    check_writable(db)


async def _execute(
    db: Path,
    run_id: str,
    config: RunConfig,
    experiment: ResolvedExperiment,
    backend: Backend,
    *,
    create: bool,
    progress: bool,
    notify: Notify,
) -> tuple[str, str | None, dict[str, int]]:
    concurrency = config.max_concurrency or backend.default_concurrency
    await backend.start(concurrency=concurrency, exact=config.mode == "exact")
    try:
        await backend.preflight()
        versions = {**_package_versions(), "model": backend.versions()}
        if create and config.mode == "exact" and (reason := await backend.exact_unavailable()):
            config = _fall_back_to_sampling(config, reason, notify)
            versions["exact_fallback"] = reason
        with Journal(db) as journal:
            if create:
                journal.create_run(
                    run_id=run_id,
                    experiment=experiment.name,
                    model=config.model,
                    mode=config.mode,
                    config=config.model_dump(mode="json"),
                    definition=experiment.model_dump(mode="json"),
                    definition_hash=experiment.definition_hash(),
                    versions=versions,
                )
            else:
                _check_same_model(journal.get_run(run_id), versions)
                if lost := journal.mark_lost_calls(run_id):
                    notify(f"{lost} paid call(s) were in flight when the run stopped: counted")
                _check_budget_left(journal, run_id, config)
                journal.set_mode(run_id, config.mode, config.model_dump(mode="json"))
                journal.set_status(run_id, "running")
            # The budget belongs to the run: what its journal says was spent counts against it,
            # including calls a killed process had in flight (paid, never journaled).
            backend.set_spent(journal.spent(run_id))
            status = "interrupted"
            message: str | None = f"stopped; continue with --resume {run_id}"
            try:
                try:
                    runner = await _run_runner(
                        journal, run_id, config, experiment, backend, concurrency, progress, notify
                    )
                except ExactUnavailable as exc:  # found out mid-run: the endpoint said nothing
                    config = _fall_back_to_sampling(config, str(exc), notify)
                    journal.set_mode(run_id, config.mode, config.model_dump(mode="json"))
                    journal.update_versions(run_id, {**versions, "exact_fallback": str(exc)})
                    runner = await _run_runner(
                        journal, run_id, config, experiment, backend, concurrency, progress, notify
                    )
                short = runner.short_conditions
                status = "complete" if not short else "incomplete"
                if short:
                    cap = (
                        f"{EXACT_MAX_ATTEMPTS} attempts"
                        if config.mode == "exact"
                        else f"{config.max_attempts_factor:g}×N attempts"
                    )
                    message = (
                        f"{len(short)} condition(s) ended short of N valid after {cap}:"
                        f" {', '.join(short[:5])}"
                    )
                else:
                    message = None
            except BudgetReached as exc:
                # The calls in flight at the cap finished and were journaled: the journal says
                # what was spent in the end.
                status = "stopped"
                spent = journal.spent(run_id)
                message = (
                    f"budget reached: spent ${spent:.4f} of ${exc.limit:.4f}; continue with"
                    f" --resume {run_id} --max-cost <more>"
                )
            except FlipbenchError as exc:
                status, message = "failed", str(exc)
                raise
            except Exception as exc:  # recorded, then re-raised: a bug must not look like a pause
                status, message = "failed", f"internal error: {exc!r}"
                raise
            finally:
                journal.set_status(run_id, status, message)
            return status, message, backend.retry_counts()
    finally:
        await backend.close()


def _check_budget_left(journal: Journal, run_id: str, config: RunConfig) -> None:
    """A resume at a cap the run has already spent would stop at once: say so instead."""
    spent = journal.spent(run_id)
    if config.max_cost is not None and spent >= config.max_cost:
        raise FlipbenchError(
            f"run {run_id} has already spent ${spent:.4f} of its ${config.max_cost:.4f} budget;"
            f" resume with a larger --max-cost to continue"
        )


def _fall_back_to_sampling(config: RunConfig, reason: str, notify: Notify) -> RunConfig:
    """Sample instead of reading probabilities, but only when the user asked for it."""
    if not config.fallback_to_sample:
        raise FlipbenchError(f"{reason}; use --mode sample, or add --fallback-to-sample")
    notify(f"{reason}; sampling instead (--fallback-to-sample)")
    return config.model_copy(update={"mode": "sample"})


async def _run_runner(
    journal: Journal,
    run_id: str,
    config: RunConfig,
    experiment: ResolvedExperiment,
    backend: Backend,
    concurrency: int,
    progress: bool,
    notify: Notify,
) -> Runner:
    """Print the plan (API backends), then run every condition up to its target."""
    settings = RunSettings(
        mode=config.mode,
        concurrency=concurrency * backend.tasks_per_slot,
        constrained=config.constrained,
        max_attempts_factor=config.max_attempts_factor,
        seed=config.seed,
        answer_from_reasoning=config.answer_from_reasoning,
    )
    reporter = reporter_for(run_id, progress)
    runner = Runner(journal, run_id, experiment, backend, settings, reporter)
    if backend.prints_plan:
        calls, most = runner.plan_counts()
        conditions = experiment.conditions()
        max_tokens = 1 if config.mode == "exact" else experiment.max_tokens
        notify(
            Plan(
                conditions=len(conditions),
                calls=calls,
                max_calls=most,
                prompt_tokens=estimate_prompt_tokens(conditions[0].messages) if conditions else 0,
                max_tokens=max_tokens,
                pricing=await backend.pricing(),
            ).line()
        )
    await runner.run()
    return runner


def _check_same_model(run: RunRow, versions: dict[str, Any]) -> None:
    """A resume must talk to the same model file the run started with."""
    before = run.versions.get("model", {}).get("gguf_sha256")
    after = versions["model"].get("gguf_sha256")
    if before and after and before != after:
        raise FlipbenchError(f"the model file of run {run.run_id} changed; start a new run")


def _finish(
    db: Path, run_id: str, status: str, message: str | None, retries: dict[str, int] | None = None
) -> RunOutcome:
    with Journal(db, create=False) as journal:
        results = compute_results(journal, run_id)
    from flipbench.report.run_figures import figures_for  # matplotlib loads only when drawing

    figures = figures_for(results, run_dir(db, run_id))
    return RunOutcome(run_id, status, message, results, figures, db, retries or {})


def _run(
    db: Path,
    run_id: str,
    config: RunConfig,
    experiment: ResolvedExperiment,
    backend: Backend,
    create: bool,
    progress: bool,
    notify: Notify | None,
) -> RunOutcome:
    """Execute on a fresh event loop; Ctrl-C leaves a journaled, resumable run behind."""
    try:
        job = _execute(
            db, run_id, config, experiment, backend,
            create=create, progress=progress, notify=notify or _silent,
        )  # fmt: skip
        status, message, retries = asyncio.run(job)
    except KeyboardInterrupt:
        raise RunInterrupted(run_id) from None
    return _finish(db, run_id, status, message, retries)


def start_run(
    config: RunConfig,
    db: Path | None = None,
    *,
    progress: bool = False,
    notify: Notify | None = None,
) -> RunOutcome:
    """Validate, then run an experiment; every completed request is journaled as it lands.

    `notify` receives one-line notices meant for a person (the plan of an API run, a fallback).
    """
    db = db or default_db_path()
    experiment, cls = _resolve(config)
    _check_db(db)
    run_id = config.run_id or new_run_id(experiment.name)
    config = config.model_copy(update={"run_id": run_id})
    with RunLock(db, run_id):  # held for the run's whole life, from before it is created
        try:
            with Journal(db, create=False) as journal:
                if run_id in {r.run_id for r in journal.list_runs()}:
                    raise FlipbenchError(f"run {run_id!r} already exists; use --resume {run_id}")
        except NoJournal:  # none yet (or another process is creating it right now)
            pass
        backend = cls.from_config(config)
        return _run(db, run_id, config, experiment, backend, True, progress, notify)


def resume_run(
    run_id: str,
    db: Path | None = None,
    *,
    progress: bool = False,
    max_cost: float | None = None,
    max_concurrency: int | None = None,
    notify: Notify | None = None,
    force: bool = False,
) -> RunOutcome:
    """Top every condition of a stopped run up to N valid samples; never replays or duplicates.

    Only how the run is executed may change on resume (budget, concurrency), never what it asks.
    The run's lock is held throughout: a run another process holds is refused (even with
    `force`, which only takes over a run whose recorded process is alive but holds no lock).
    """
    db = db or default_db_path()
    validate_run_id(run_id)
    _check_db(db)
    with Journal(db, create=False) as journal:
        journal.get_run(run_id)  # an unknown run is refused before anything is taken
    with RunLock(db, run_id, force=force) as lock:
        with Journal(db, create=False) as journal:
            run = journal.get_run(run_id)  # as it is now that no one else can change it
        overrides = {"max_cost": max_cost, "max_concurrency": max_concurrency}
        config = RunConfig(
            **{**run.config, **{k: v for k, v in overrides.items() if v is not None}}
        )
        experiment = ResolvedExperiment(**run.definition)
        if lock.check_takeover(run) and notify is not None:
            notify(f"taking over run {run_id} from process {run.pid}, which does not hold it")
        if run.status == "complete":
            return _finish(db, run_id, run.status, "already complete")
        backend = backend_class(config.model).from_config(config)
        return _run(db, run_id, config, experiment, backend, False, progress, notify)


def list_runs(db: Path | None = None) -> list[RunRow]:
    """Every run in the journal, oldest first."""
    db = db or default_db_path()
    with Journal(db, create=False) as journal:
        return journal.list_runs()


def run_results(run_id: str, db: Path | None = None) -> RunResults:
    """Rates, intervals and S of a run, recomputed from its journaled rows."""
    db = db or default_db_path()
    with Journal(db, create=False) as journal:
        return compute_results(journal, run_id)


def export(run_id: str, fmt: str, path: Path | None = None, db: Path | None = None) -> Path:
    """Write one row per sample to CSV or Parquet; returns the file written."""
    from flipbench.export import export_run  # pandas loads only when exporting

    db = db or default_db_path()
    with Journal(db, create=False) as journal:
        journal.get_run(run_id)
        target = path or run_dir(db, run_id) / f"samples.{fmt}"
        return export_run(journal, run_id, fmt, target)


def demo(db: Path | None = None, *, progress: bool = False) -> RunOutcome:
    """Exp 1 on the embedded model in exact mode: offline, no key, about ten seconds."""
    return start_run(RunConfig(mode="exact"), db, progress=progress)


def import_data(source: str, directory: Path, db: Path | None = None) -> ImportReport:
    """Load another project's released data into the journal as runs (`failure-to-mix`)."""
    from flipbench.importers import import_failure_to_mix

    if source != "failure-to-mix":
        raise FlipbenchError(f"unknown data source {source!r} (known: failure-to-mix)")
    return import_failure_to_mix(directory, db or default_db_path())


def draw_figures(run_ids: list[str], stem: str, db: Path | None = None) -> list[Path]:
    """Several runs of one experiment on one figure (e.g. the paper's models side by side),
    written to `flipbench-runs/figures/`."""
    from flipbench.report.run_figures import overlay_figures

    db = db or default_db_path()
    with Journal(db, create=False) as journal:
        results = [compute_results(journal, run_id) for run_id in run_ids]
    try:
        return overlay_figures(results, db.resolve().parent / "flipbench-runs" / "figures", stem)
    except ValueError as exc:
        raise FlipbenchError(str(exc)) from None
