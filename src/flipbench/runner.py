"""Turns a resolved experiment into requests, sends them, and journals each reply as it lands.

Scheduling is top-up: a condition gets new sample indices only while its valid samples plus
those in flight are short of N, so a run (or a resume) never overshoots N valid and never
reuses an index. Invalid replies are journaled and replaced, up to a cap on attempts.
How one trial is sent is its experiment's protocol (`tasks.protocols`): one `trials.Trial`
each, for sampling and for exact mode.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from flipbench.errors import BudgetReached, ExactUnavailable, FlipbenchError
from flipbench.interventions.reading import read_reply
from flipbench.interventions.seeding import seeded_condition
from flipbench.parse import NO_LOGPROBS, InvalidCategory, parse_last_answer, parse_reply
from flipbench.progress import Reporter
from flipbench.providers.base import Backend, Reply, SampleSettings, exact_distribution
from flipbench.store import Journal, SampleRecord
from flipbench.tasks.definition import Condition, ResolvedExperiment
from flipbench.trials import TRIALS

EXACT_MAX_ATTEMPTS = 3
# The (condition, sample index) a worker task is working on, for the backend's on_send hook.
_CALL: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("call", default=None)
# Message text longer than this is stored once, in the `content` column, not again inside the
# stored response.
_STORE_ONCE_CHARS = 1000
_STORED_ELSEWHERE = "[flipbench: stored in the content column]"
MAX_CONSECUTIVE_ERRORS = 20


@dataclass
class _State:
    condition: Condition
    target: int
    max_attempts: int
    valid: int = 0
    total: int = 0
    next_index: int = 0
    inflight: int = 0

    def wants_more(self) -> bool:
        return self.valid + self.inflight < self.target and self.total + self.inflight < (
            self.max_attempts
        )


@dataclass(frozen=True)
class RunSettings:
    """What a runner needs beyond the experiment: mode, concurrency and sampling options."""

    mode: str
    concurrency: int
    constrained: bool
    max_attempts_factor: float
    seed: int | None
    answer_from_reasoning: bool = False


def sample_seed(base: int, condition: str, index: int) -> int:
    """A per-sample seed: identical requests must not share one, or every sample repeats."""
    digest = hashlib.sha256(f"{base}:{condition}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Runner:
    """Runs (or resumes) one run against one started backend."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        experiment: ResolvedExperiment,
        backend: Backend,
        settings: RunSettings,
        reporter: Reporter,
    ) -> None:
        self.journal, self.run_id, self.experiment = journal, run_id, experiment
        self.backend, self.settings, self.reporter = backend, settings, reporter
        backend.check_protocol(experiment.protocol.kind)  # before any call, whatever called us
        self.trial = TRIALS[experiment.protocol.kind]
        exact = settings.mode == "exact"
        # Samples per request: several where the protocol and the backend allow (one slot
        # each on llama.cpp), else one.
        self.batch = 1
        seeded = experiment.intervention is not None and experiment.intervention.seed
        if not exact and self.trial.sample_many is not None and not seeded:  # one prompt each
            probe = SampleSettings(experiment.temperature, experiment.max_tokens)
            self.batch = max(1, backend.completions_per_request(probe))
        target = 1 if exact else experiment.n
        cap = (
            EXACT_MAX_ATTEMPTS if exact else math.ceil(experiment.n * settings.max_attempts_factor)
        )
        counts = journal.condition_counts(run_id)
        self.states = []
        for cond in experiment.conditions():
            valid, total, next_index = counts.get(cond.key, (0, 0, 0))
            self.states.append(_State(cond, target, cap, valid, total, next_index))
        self._cond = asyncio.Condition()
        if backend.prints_plan:  # a paid backend: each request is marked in flight as it leaves
            backend.on_send = self._mark_sent
        # Set when the budget is spent: no new request starts, those in flight finish and are
        # journaled (they are paid), then the run stops with this error.
        self._budget_stop: BudgetReached | None = None
        self._consecutive_errors = 0
        self.requests = 0
        self.invalid = 0
        self.cost = journal.spent(run_id)

    def _mark_sent(self) -> None:
        """A crash from now on loses a paid reply; the journal says so (see Journal.spent)."""
        call = _CALL.get()
        if call is not None:
            self.journal.begin_call(self.run_id, *call)

    def plan_counts(self) -> tuple[int, int]:
        """Calls still needed if every reply is valid, and the most the attempt caps allow."""
        needed = sum(max(0, s.target - s.valid) for s in self.states)
        most = sum(max(0, s.max_attempts - s.total) for s in self.states if s.valid < s.target)
        return needed, most

    @property
    def done(self) -> int:
        return sum(min(s.valid, s.target) for s in self.states)

    @property
    def short_conditions(self) -> list[str]:
        """Conditions that ended below N valid because their attempts ran out."""
        return [s.condition.key for s in self.states if s.valid < s.target]

    async def run(self) -> None:
        self.reporter.start(sum(s.target for s in self.states), self.done)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.settings.concurrency):
                    group.create_task(self._worker())
        except* FlipbenchError as errors:
            raise errors.exceptions[0] from None
        finally:
            self.reporter.stop()
        if self._budget_stop is not None:
            raise self._budget_stop

    def _take(self) -> tuple[_State, list[int]] | None:
        """The next indices to send: up to `self.batch` of one condition (what one request
        may carry), no more than it still wants."""
        if self._budget_stop is not None:
            return None
        for state in self.states:
            if state.wants_more():
                room = min(
                    state.target - state.valid - state.inflight,
                    state.max_attempts - state.total - state.inflight,
                )
                count = max(1, min(self.batch, room))
                indices = list(range(state.next_index, state.next_index + count))
                state.next_index += count
                state.inflight += count
                return state, indices
        return None

    def _busy(self) -> bool:
        return any(s.inflight for s in self.states)

    async def _worker(self) -> None:
        while True:
            async with self._cond:
                await self._cond.wait_for(
                    lambda: (
                        self._budget_stop is not None
                        or any(s.wants_more() for s in self.states)
                        or not self._busy()
                    )
                )
                job = self._take()
                if job is None:
                    self._cond.notify_all()
                    return
            state, indices = job
            records: list[SampleRecord] = []
            _CALL.set((state.condition.key, indices[0]))
            try:
                for pending in await self._send(state.condition, indices):
                    self.journal.record(self.run_id, pending)
                    records.append(pending)
            except BudgetReached as exc:  # nothing was sent for these indices
                self.stop_for_budget(exc)
            finally:
                # Counts change under the lock together with `inflight`, so no other worker
                # can see a finished request as neither in flight nor counted.
                async with self._cond:
                    state.inflight -= len(indices)
                    state.total += len(records)
                    state.valid += sum(int(r.valid) for r in records)
                    self._cond.notify_all()
            for record in records:
                self.requests += 1
                self.invalid += int(not record.valid)
                self.cost += record.cost or 0.0
                self.reporter.update(self.done, self.requests, self.invalid, self.cost)
                if record.invalid_category == NO_LOGPROBS:
                    raise ExactUnavailable(
                        f"{self.backend.model} returned no top_logprobs, so exact mode cannot run"
                    )
                self._check_errors(record)

    def _check_errors(self, record: SampleRecord) -> None:
        if record.status != "error":
            self._consecutive_errors = 0
            return
        self._consecutive_errors += 1
        if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            raise FlipbenchError(
                f"{self._consecutive_errors} requests in a row failed; last error:"
                f" {record.meta.get('error')}"
            )

    def _sample_settings(self, condition: Condition, index: int) -> SampleSettings:
        seed = None
        if self.settings.seed is not None:
            seed = sample_seed(self.settings.seed, condition.key, index)
        experiment = self.experiment
        return SampleSettings(
            temperature=experiment.temperature,
            max_tokens=experiment.max_tokens,
            constrain_to=condition.answers if self.settings.constrained else None,
            constrain_count=experiment.d if experiment.parser == "d-tokens" else 1,
            seed=seed,
            continuation=self.trial.continuation,
            request_fields=condition.request_fields,
        )

    async def _send(self, condition: Condition, indices: list[int]) -> list[SampleRecord]:
        """The rows of one request: an exact reading, one sample, or several samples of one
        condition in one request (their seed is the first index's)."""
        if self.settings.mode == "exact":
            reply = await self.trial.distribution(self.backend, condition)
            return [self._exact_record(condition, indices[0], reply)]
        sample = self._sample_settings(condition, indices[0])
        if len(indices) > 1 and self.trial.sample_many is not None:
            return await self.trial.sample_many(self, condition, indices, sample)
        given = None
        if condition.seeded:  # the number is a function of the sample: a resume draws the same
            base = self.run_id if self.settings.seed is None else str(self.settings.seed)
            condition, given = seeded_condition(condition, base, indices[0])
        record = await self.trial.sample(self, condition, indices[0], sample)
        if given is not None:
            record.meta["given_seed"] = given
        return [record]

    def stop_for_budget(self, exc: BudgetReached) -> None:
        """No new request starts; those in flight finish and are journaled, then the run stops."""
        self._budget_stop = self._budget_stop or exc

    def parsed_record(self, condition: Condition, index: int, reply: Reply) -> SampleRecord:
        """Journal row of one sampled reply, read with the experiment's parser."""
        record = _base_record(condition, index, reply)
        if reply.ok and reply.invalid_category is not None:
            record.invalid_category = reply.invalid_category
        elif reply.ok:
            experiment = self.experiment
            if experiment.intervention is None:
                parsed = parse_reply(
                    reply.content, condition.answers, experiment.parser, d=experiment.d,
                    finish_reason=reply.finish_reason,
                )  # fmt: skip
            else:  # read as the intervention asked for it (after "Answer:", a tool call, …)
                parsed, extra = read_reply(
                    experiment.intervention, reply.content, reply.response, condition.answers,
                    experiment.parser, d=experiment.d, finish_reason=reply.finish_reason,
                )  # fmt: skip
                record.meta.update(extra)
            reasoning = reply.meta.get("reasoning")
            if (
                self.settings.answer_from_reasoning
                and parsed.category in (InvalidCategory.EMPTY, InvalidCategory.TRUNCATED)
                and isinstance(reasoning, str)
                # one answer of a known set: not numbers, not D answers in one reply
                and condition.answers
                and experiment.parser != "d-tokens"
            ):
                # Opt-in only, and marked on the sample: the visible reply held no answer.
                from_reasoning = parse_last_answer(reasoning, condition.answers)
                if from_reasoning.valid:
                    parsed = from_reasoning
                    record.meta["answer_source"] = "reasoning"
            record.answer = parsed.answer
            record.valid = parsed.valid
            record.invalid_category = None if parsed.category is None else str(parsed.category)
        return record

    def _exact_record(self, condition: Condition, index: int, reply: Reply) -> SampleRecord:
        record = _base_record(condition, index, reply)
        if reply.ok and reply.invalid_category is not None:  # no_logprobs, malformed, …
            record.invalid_category = reply.invalid_category
            return record
        if not reply.ok:
            return record
        if reply.answer_logprobs is None:
            record.invalid_category = str(InvalidCategory.UNPARSEABLE)
            return record
        temperature = self.experiment.temperature
        dist = exact_distribution(reply.answer_logprobs, temperature)
        record.coverage = dist.coverage
        record.meta.update(raw_probs=dist.raw, temperature=temperature)
        censoring = reply.censoring  # a top-k list hid answers: bounds, not a point
        censored = censoring.report(dist.renormalised, temperature) if censoring else None
        if censored is not None:
            record.meta["censored"] = censored
            record.valid = True  # a reading (its rate lies within the bounds); probs stay NULL
        elif dist.coverage > 0:
            record.probs = dist.renormalised
            record.valid = True
        else:  # no answer token has any probability: nothing to renormalise
            record.invalid_category = str(InvalidCategory.UNPARSEABLE)
        return record


def _base_record(condition: Condition, index: int, reply: Reply) -> SampleRecord:
    meta = dict(reply.meta)
    if reply.error:
        meta["error"] = reply.error
    if "reasoning" in meta and _message_field(reply.response, "reasoning") == meta["reasoning"]:
        del meta["reasoning"]  # already in the stored response
    return SampleRecord(
        condition=condition.key,
        sample_index=index,
        status="ok" if reply.ok else "error",
        request=reply.request,
        response=_stored_response(reply),
        valid=False,
        http_status=reply.http_status,
        content=reply.content,
        finish_reason=reply.finish_reason,
        invalid_category=None if reply.ok else str(InvalidCategory.ERROR),
        cost=reply.cost,
        meta=meta,
        latency_s=reply.latency_s,
    )


def _message_field(response: Any, name: str) -> Any:
    choices = response.get("choices") if isinstance(response, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    return message.get(name) if isinstance(message, dict) else None


def _stored_response(reply: Reply) -> Any:
    """The response as journaled: a long reply text is kept once, in the content column (a chat
    reply's `message.content`, a text completion's `text`)."""
    content, response = reply.content, reply.response
    if content is None or len(content) <= _STORE_ONCE_CHARS:
        return response
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return response
    choice = dict(choices[0])
    if _message_field(response, "content") == content:
        choice["message"] = {**choice["message"], "content": _STORED_ELSEWHERE}
    elif choice.get("text") == content:
        choice["text"] = _STORED_ELSEWHERE
    else:
        return response
    return {**response, "choices": [choice, *choices[1:]]}
