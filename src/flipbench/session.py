"""One run's life on an event loop: the backend started and closed, the run created or
reopened in the journal, its budget taken from the journal, exact mode's fallback, the plan of
every run (its cost on an API, its time on a local model), the runner, and the status recorded
whatever happens.

The Python API (`api`) wraps it: synchronously (one run, a fresh loop) or asynchronously, so
that several runs (a sweep) can share one event loop.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flipbench import __version__
from flipbench.config import RunConfig
from flipbench.errors import BudgetReached, ExactUnavailable, FlipbenchError
from flipbench.plan import LOCAL_RATES, LocalRates, Plan, local_seconds, slow_warning
from flipbench.progress import reporter_for
from flipbench.providers.base import Backend, estimate_prompt_tokens, estimate_request_tokens
from flipbench.providers.keys import KeysExhausted
from flipbench.runner import EXACT_MAX_ATTEMPTS, Runner, RunSettings
from flipbench.store import Journal, RunRow
from flipbench.tasks.definition import Condition, ResolvedExperiment

Notify = Callable[[str], None]

_LIBS = ("aiohttp", "numpy", "scipy", "pydantic", "xllamacpp")


def _silent(text: str) -> None:
    """Notices go nowhere unless the caller asks for them."""


def package_versions() -> dict[str, Any]:
    """flipbench's, Python's and the main libraries' versions, recorded with every run."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, Any]:
    """Read once per process: the metadata lookups cost ~40 ms, and a sweep starts hundreds of
    runs (installed versions do not change under a running process)."""
    versions: dict[str, Any] = {"flipbench": __version__, "python": platform.python_version()}
    for name in _LIBS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass
class RunSession:
    """Executes one run (new or resumed) against one backend; `execute` returns the status the
    run ended with, the message recorded with it, and the retries by class."""

    db: Path
    run_id: str
    config: RunConfig
    experiment: ResolvedExperiment
    backend: Backend
    create: bool
    progress: bool = False
    notify: Notify = field(default=_silent)

    async def execute(self) -> tuple[str, str | None, dict[str, int]]:
        backend, config = self.backend, self.config
        concurrency = config.max_concurrency or backend.default_concurrency
        backend.size_for(*request_size(self.experiment))
        await backend.start(concurrency=concurrency, exact=config.mode == "exact")
        try:
            await backend.preflight()
            versions = {**package_versions(), "model": backend.versions()}
            exact = self.create and config.mode == "exact"
            if exact and (reason := await backend.exact_unavailable()):
                self._fall_back_to_sampling(reason)
                versions["exact_fallback"] = reason
            with Journal(self.db) as journal:
                self._open(journal, versions)
                status, message = await self._run(journal, versions, concurrency)
            return status, message, backend.retry_counts()
        finally:
            await backend.close()

    def _open(self, journal: Journal, versions: dict[str, Any]) -> None:
        """Create the run, or reopen it for a resume; either way its budget starts from what
        its journal says was spent (calls a killed process had in flight included)."""
        run_id, config, experiment = self.run_id, self.config, self.experiment
        if self.create:
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
            lost = journal.mark_lost_calls(run_id)
            _check_budget_left(journal, run_id, config)  # a refusal is one line, nothing more
            if lost:
                self.notify(f"{lost} paid call(s) were in flight when the run stopped: counted")
            journal.set_mode(run_id, config.mode, config.model_dump(mode="json"))
            journal.set_status(run_id, "running")
        self.backend.set_spent(journal.spent(run_id))

    async def _run(
        self, journal: Journal, versions: dict[str, Any], concurrency: int
    ) -> tuple[str, str | None]:
        """Run to the end, and record how it ended whatever happens (a bug is recorded as
        `failed`, then re-raised: it must not look like a pause)."""
        run_id = self.run_id
        status = "interrupted"
        message: str | None = f"stopped; continue with --resume {run_id}"
        try:
            try:
                runner = await self._runner(journal, concurrency)
            except ExactUnavailable as exc:  # found out mid-run: the endpoint said nothing
                self._fall_back_to_sampling(str(exc))
                journal.set_mode(run_id, self.config.mode, self.config.model_dump(mode="json"))
                journal.update_versions(run_id, {**versions, "exact_fallback": str(exc)})
                runner = await self._runner(journal, concurrency)
            status, message = self._ending(runner.short_conditions)
        except BudgetReached as exc:
            # The calls in flight at the cap finished and were journaled: the journal says
            # what was spent in the end.
            status = "stopped"
            message = (
                f"budget reached: spent ${journal.spent(run_id):.4f} of ${exc.limit:.4f};"
                f" continue with --resume {run_id} --max-cost <more>"
            )
        except KeysExhausted as exc:  # no fault of the run: it waits for a key with credit
            status = "stopped"
            message = f"{exc}; continue with --resume {run_id} once a key has credit"
            raise
        except FlipbenchError as exc:
            status, message = "failed", str(exc)
            raise
        except Exception as exc:
            status, message = "failed", f"internal error: {exc!r}"
            raise
        finally:
            journal.set_status(run_id, status, message)
        return status, message

    def _ending(self, short: list[str]) -> tuple[str, str | None]:
        if not short:
            return "complete", None
        cap = (
            f"{EXACT_MAX_ATTEMPTS} attempts"
            if self.config.mode == "exact"
            else f"{self.config.max_attempts_factor:g}×N attempts"
        )
        return "incomplete", (
            f"{len(short)} condition(s) ended short of N valid after {cap}: {', '.join(short[:5])}"
        )

    def _fall_back_to_sampling(self, reason: str) -> None:
        """Sample instead of reading probabilities, but only when the user asked for it."""
        if not self.config.fallback_to_sample:
            raise FlipbenchError(f"{reason}; use --mode sample, or add --fallback-to-sample")
        self.notify(f"{reason}; sampling instead (--fallback-to-sample)")
        self.config = self.config.model_copy(update={"mode": "sample"})

    async def _runner(self, journal: Journal, concurrency: int) -> Runner:
        """Print the plan (and a warning before a long local run), then run every condition up
        to its target."""
        config, backend, experiment = self.config, self.backend, self.experiment
        settings = RunSettings(
            mode=config.mode,
            concurrency=concurrency * backend.tasks_per_slot,
            constrained=config.constrained,
            max_attempts_factor=config.max_attempts_factor,
            seed=config.seed,
            answer_from_reasoning=config.answer_from_reasoning,
        )
        reporter = reporter_for(self.run_id, self.progress)
        runner = Runner(journal, self.run_id, experiment, backend, settings, reporter)
        calls, most = runner.plan_counts()
        reporter.budget(most)  # the ETA counts attempts, not only valid answers
        plan = await self._plan(calls, most)
        self.notify(plan.line())
        if warning := slow_warning(plan, exact_possible=experiment.exact):
            self.notify(warning)
        await runner.run()
        return runner

    async def _plan(self, calls: int, most: int) -> Plan:
        """Calls and attempt cap of every run; the cost of a paid one, the time of a local one."""
        config, backend, experiment = self.config, self.backend, self.experiment
        conditions = experiment.conditions()
        exact = config.mode == "exact"
        seconds = None
        if backend.uses_cpu_threads:
            rates = LOCAL_RATES
            if backend.exact_s_per_condition is not None:  # this backend's own reading time
                rates = replace(
                    rates, exact_s_per_condition=backend.exact_s_per_condition,
                    prompt_tokens_per_s=float("inf"),
                )  # fmt: skip
            seconds = local_run_seconds(
                experiment, calls, exact=exact, constrained=config.constrained, rates=rates
            )
        return Plan(
            conditions=len(conditions),
            calls=calls,
            max_calls=most,
            prompt_tokens=_prompt_tokens(conditions[0]) if conditions else 0,
            max_tokens=1 if exact else experiment.max_tokens,
            pricing=await backend.pricing() if backend.prints_plan else None,
            seconds=seconds,
        )


def _check_budget_left(journal: Journal, run_id: str, config: RunConfig) -> None:
    """A resume at a cap the run has already spent would stop at once: say so instead."""
    spent = journal.spent(run_id)
    if config.max_cost is not None and spent >= config.max_cost:
        raise FlipbenchError(
            f"run {run_id} has already spent ${spent:.4f} of its ${config.max_cost:.4f} budget;"
            f" resume with a larger --max-cost to continue"
        )


def _check_same_model(run: RunRow, versions: dict[str, Any]) -> None:
    """A resume must talk to the same model file the run started with."""
    before = run.versions.get("model", {}).get("gguf_sha256")
    after = versions["model"].get("gguf_sha256")
    if before and after and before != after:
        raise FlipbenchError(f"the model file of run {run.run_id} changed; start a new run")


def local_run_seconds(
    experiment: ResolvedExperiment,
    calls: int,
    *,
    exact: bool,
    constrained: bool,
    rates: LocalRates = LOCAL_RATES,
) -> tuple[float, float]:
    """(fewest, most) seconds of `calls` requests of this experiment on the embedded model: a
    constrained reply decodes its D answers, the spaces between and the end token; an
    unconstrained one up to max_tokens; every prompt is the longest request's, every turn
    counted (the plan's estimate, also used by bench/battery_cost.py --plan)."""
    shortest = 2 * experiment.d
    longest = shortest if constrained else experiment.max_tokens
    return local_seconds(
        calls, exact=exact, reply_tokens=(shortest, longest),
        prompt_tokens=request_size(experiment)[0], conditions=len(experiment.conditions()),
        rates=rates,
    )  # fmt: skip


def request_size(experiment: ResolvedExperiment) -> tuple[int, int]:
    """(estimated prompt tokens, decoded tokens) of the experiment's longest request: its
    messages with every follow-up turn, and a reply of max_tokens for each turn (a chained or
    history trial sends the earlier replies back)."""
    prompt, reply = 0, experiment.max_tokens
    for condition in experiment.conditions():
        turns = 1 + len(condition.followups)
        text = [*condition.messages, *({"role": "user", "content": f} for f in condition.followups)]
        if condition.prefill:
            text.append({"role": "assistant", "content": condition.prefill})
        size = _prompt_tokens(condition) if condition.raw_prompt is not None else 0
        prompt = max(prompt, size, estimate_prompt_tokens(text))
        reply = max(reply, experiment.max_tokens * turns)
    return prompt, reply


def _prompt_tokens(condition: Condition) -> int:
    """The rough prompt size of one request of this condition (chat messages or raw text)."""
    if condition.raw_prompt is not None:
        return estimate_request_tokens({"prompt": condition.raw_prompt})
    return estimate_request_tokens({"messages": condition.messages})
