"""The Python API: everything the CLI does, as functions.

from flipbench.api import start_run
from flipbench.config import RunConfig
outcome = start_run(RunConfig(model="local/smollm2", mode="exact"))
print(outcome.results.s)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flipbench import summaries
from flipbench.config import RunConfig, available_cores, default_db_path
from flipbench.errors import FlipbenchError, RunInterrupted
from flipbench.importers.base import ImportReport
from flipbench.interventions import check_intervention, get_intervention
from flipbench.providers import backend_class
from flipbench.providers.base import Backend
from flipbench.results import RunResults, compute_results
from flipbench.session import Notify, RunSession
from flipbench.store import (
    Journal,
    NoJournal,
    RunLock,
    RunLocked,
    RunRow,
    check_readable,
    check_writable,
    inside,
    validate_run_id,
)
from flipbench.summaries import RunSummary
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ExperimentDefinition, ResolvedExperiment

#: Builds a run's backend from its config instead of the backend class's `from_config` (a
#: sweep's backends share one budget and one concurrency cap).
BackendFactory = Callable[[RunConfig], Backend]


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


def _check_reading(definition: ExperimentDefinition, config: RunConfig) -> None:
    """A game's exact reading is the first token of a reply with no reasoning: not the game as
    designed (reason, then choose), so it is run only when asked for by name. Elsewhere the
    first-token reading is the APIs' one, and on `local/…` an explicit alternative to whole
    answers."""
    first_token = definition.exact_reading == "first-token"
    if config.first_token and config.mode != "exact":
        raise FlipbenchError("--first-token reads probabilities: use it with --mode exact")
    if first_token and config.mode == "exact" and not config.first_token:
        raise FlipbenchError(
            f"{definition.name} asks for reasoning, then a choice; exact mode would read the first"
            " token of a reply with no reasoning. Sample it (--mode sample), or ask for that"
            " reading by name: --mode exact --first-token"
        )


def _resolve(config: RunConfig) -> tuple[ResolvedExperiment, type[Backend]]:
    """Validate everything a run needs before anything is written or started."""
    definition = get_experiment(config.experiment)
    _check_reading(definition, config)
    intervention = get_intervention(config.intervention)
    experiment = definition.resolve(
        grid=config.grid,
        p_values=config.p_values,
        prompt=config.prompt,
        system_prompt=config.system_prompt,
        n=config.n,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        d=config.d,
        intervention=intervention,
    )
    cls = backend_class(config.model)
    check_intervention(
        intervention, experiment=experiment.name, protocol=experiment.protocol.kind,
        parser=experiment.parser, mode=config.mode, constrained=config.constrained,
        model=config.model, features=cls.request_features, model_options=config.model_options,
    )  # fmt: skip
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
    cls.check_protocol(experiment.protocol.kind)  # e.g. raw text needs a completions endpoint
    cls.check_backend_options(config.backend_options)  # -B: the backend's own arguments
    _check_threads(cls, config)
    if config.run_id is not None:
        validate_run_id(config.run_id)
    return experiment, cls


def check_run(config: RunConfig) -> ResolvedExperiment:
    """Validate a run's config as `start_run` would (experiment, grid, model, intervention
    and their combination) without starting anything; the resolved experiment."""
    return _resolve(config)[0]


def _check_threads(cls: type[Backend], config: RunConfig) -> None:
    """`--threads` is llama.cpp's CPU threads: an API model runs elsewhere, and a flag that
    silently did nothing would mislead (its parallelism is --max-concurrency)."""
    if config.threads is not None and not cls.uses_cpu_threads:
        raise FlipbenchError(
            f"--threads sets the CPU threads of a local model; {config.model} runs on its"
            " provider's machines (use --max-concurrency for requests in flight)"
        )


def _with_threads(cls: type[Backend], config: RunConfig) -> RunConfig:
    """A local run records the threads it runs with, the default (this process's cores)
    included, so that its speed can be compared with another's."""
    if cls.uses_cpu_threads and config.threads is None:
        return config.model_copy(update={"threads": available_cores()})
    return config


def _check_db(db: Path) -> None:
    """Before a run starts anything: the journal can be read and written."""
    check_readable(db)
    if not db.resolve().parent.is_dir():
        raise FlipbenchError(f"directory {db.resolve().parent} for the journal does not exist")
    check_writable(db)


def _finish(
    db: Path, run_id: str, status: str, message: str | None, retries: dict[str, int] | None = None
) -> RunOutcome:
    with Journal(db, create=False) as journal:
        results = compute_results(journal, run_id)
    from flipbench.report.run_figures import figures_for  # matplotlib loads only when drawing

    figures = figures_for(results, run_dir(db, run_id))
    return RunOutcome(run_id, status, message, results, figures, db, retries or {})


def _sync(run_id: str, job: Coroutine[Any, Any, RunOutcome]) -> RunOutcome:
    """Run on a fresh event loop; Ctrl-C leaves a journaled, resumable run behind."""
    try:
        return asyncio.run(job)
    except KeyboardInterrupt:
        raise RunInterrupted(run_id) from None


async def _session(
    db: Path, run_id: str, config: RunConfig, experiment: ResolvedExperiment, backend: Backend,
    *, create: bool, progress: bool, notify: Notify | None, results: bool = True,
) -> RunOutcome:  # fmt: skip
    session = RunSession(
        db, run_id, config, experiment, backend, create=create, progress=progress,
        notify=notify or _silent,
    )  # fmt: skip
    status, message, retries = await session.execute()
    if not results:  # a sweep of hundreds of runs reads them all back at once, without figures
        return RunOutcome(run_id, status, message, None, [], db, retries)
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
    if config.run_id is None:  # named here, so that Ctrl-C can say which run to resume
        experiment, _ = _resolve(config)
        config = config.model_copy(update={"run_id": new_run_id(experiment.name)})
    assert config.run_id is not None
    return _sync(config.run_id, start_run_async(config, db, progress=progress, notify=notify))


async def start_run_async(
    config: RunConfig,
    db: Path | None = None,
    *,
    progress: bool = False,
    notify: Notify | None = None,
    make_backend: BackendFactory | None = None,
    results: bool = True,
) -> RunOutcome:
    """`start_run` on the caller's event loop, so that several runs can go side by side
    (each holds its own lock and backend; the journal serialises their writes).
    `make_backend` replaces the backend class's own construction (a sweep's shared budget);
    `results=False` skips reading the results back and drawing figures at the end."""
    db = db or default_db_path()
    experiment, cls = _resolve(config)
    _check_db(db)
    run_id = config.run_id or new_run_id(experiment.name)
    config = _with_threads(cls, config.model_copy(update={"run_id": run_id}))
    with RunLock(db, run_id):  # held for the run's whole life, from before it is created
        try:
            with Journal(db, create=False) as journal:
                if journal.has_run(run_id):  # one lookup: a sweep starts hundreds of runs
                    raise FlipbenchError(f"run {run_id!r} already exists; use --resume {run_id}")
        except NoJournal:  # none yet (or another process is creating it right now)
            pass
        backend = (make_backend or cls.from_config)(config)
        return await _session(
            db, run_id, config, experiment, backend, create=True, progress=progress, notify=notify,
            results=results,
        )  # fmt: skip


def resume_run(
    run_id: str,
    db: Path | None = None,
    *,
    progress: bool = False,
    max_cost: float | None = None,
    max_concurrency: int | None = None,
    notify: Notify | None = None,
    force: bool = False,
    threads: int | None = None,
) -> RunOutcome:
    """Top every condition of a stopped run up to N valid samples; never replays or duplicates.

    Only how the run is executed may change on resume (budget, concurrency, a local model's
    threads), never what it asks.
    """
    job = resume_run_async(
        run_id, db, progress=progress, max_cost=max_cost, max_concurrency=max_concurrency,
        notify=notify, force=force, threads=threads,
    )  # fmt: skip
    return _sync(run_id, job)


async def resume_run_async(
    run_id: str,
    db: Path | None = None,
    *,
    progress: bool = False,
    max_cost: float | None = None,
    max_concurrency: int | None = None,
    notify: Notify | None = None,
    force: bool = False,
    threads: int | None = None,
    make_backend: BackendFactory | None = None,
    results: bool = True,
) -> RunOutcome:
    """`resume_run` on the caller's event loop.

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
        overrides = {"max_cost": max_cost, "max_concurrency": max_concurrency, "threads": threads}
        config = RunConfig(
            **{**run.config, **{k: v for k, v in overrides.items() if v is not None}}
        )
        cls = backend_class(config.model)
        _check_threads(cls, config)
        config = _with_threads(cls, config)
        experiment = ResolvedExperiment(**run.definition)
        if lock.check_takeover(run) and notify is not None:
            notify(f"taking over run {run_id} from process {run.pid}, which does not hold it")
        if run.status == "complete":
            if not results:
                return RunOutcome(run_id, run.status, "already complete", None, [], db)
            return _finish(db, run_id, run.status, "already complete")
        backend = (make_backend or cls.from_config)(config)
        return await _session(
            db, run_id, config, experiment, backend, create=False, progress=progress, notify=notify,
            results=results,
        )  # fmt: skip


def list_runs(db: Path | None = None) -> list[RunRow]:
    """Every run in the journal, oldest first."""
    db = db or default_db_path()
    with Journal(db, create=False) as journal:
        return journal.list_runs()


def delete_run(run_id: str, db: Path | None = None) -> tuple[int, Path | None]:
    """Remove a run for good: its journal rows (one transaction) and its figure folder. Its
    lock is taken first, so a run being executed is refused and none can start meanwhile.
    Returns the number of samples removed and the folder removed (None when it had none)."""
    import shutil

    db = db or default_db_path()
    validate_run_id(run_id)
    with Journal(db, create=False) as journal:
        journal.get_run(run_id)  # an unknown run is refused before anything is taken
    check_writable(db)
    try:
        with RunLock(db, run_id), Journal(db) as journal:
            removed = journal.delete_run(run_id)
    except RunLocked:
        raise FlipbenchError(f"run {run_id} is running; stop it before deleting it") from None
    folder = run_dir(db, run_id)
    if not folder.is_dir() or folder.is_symlink():
        return removed, None
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise FlipbenchError(
            f"run {run_id} was deleted from the journal, but not its folder {folder}: {exc}"
        ) from None
    return removed, folder


def run_summaries(db: Path | None = None) -> list[tuple[RunRow, RunSummary]]:
    """Every run with its S, as `flipbench runs` lists them: remembered in the journal and
    recomputed only for runs that changed since (`flipbench.summaries`)."""
    return summaries.run_summaries(db or default_db_path())


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


def import_data(source: str, directory: Path | None = None, db: Path | None = None) -> ImportReport:
    """Load another project's released data into the journal as runs (`failure-to-mix`); without
    `directory`, the copy that ships with flipbench."""
    from flipbench.importers import import_failure_to_mix, paper_data

    if source != "failure-to-mix":
        raise FlipbenchError(f"unknown data source {source!r} (known: failure-to-mix)")
    if directory is None:
        with paper_data() as shipped:
            return import_failure_to_mix(shipped, db or default_db_path())
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
