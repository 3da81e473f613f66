"""One trial per protocol: how a condition is sent, sampled or in exact mode.

The runner schedules trials and journals them; what one trial sends is its experiment's
protocol (`tasks.protocols`), and each protocol has one `Trial` here: one request whose reply is
the answer (single turn, a history, an assistant prefill, a raw prompt), or a conversation of
several (chained turns).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flipbench.errors import BudgetReached, FlipbenchError
from flipbench.providers.base import Backend, Reply, SampleSettings
from flipbench.store import SampleRecord
from flipbench.tasks.definition import Condition
from flipbench.tasks.protocols import ProtocolKind

#: A chained trial whose next turn was never sent because the budget ran out.
BUDGET_STOP = "budget_stop"


class TrialRun(Protocol):
    """What a trial needs of the run it belongs to (`runner.Runner`)."""

    backend: Backend

    def parsed_record(self, condition: Condition, index: int, reply: Reply) -> SampleRecord:
        """The journal row of one sampled reply, read with the experiment's parser."""
        ...

    def stop_for_budget(self, exc: BudgetReached) -> None:
        """Start no new request: the budget is spent."""
        ...


Send = Callable[[Backend, Condition, SampleSettings], Awaitable[Reply]]
SampleMany = Callable[
    [TrialRun, Condition, Sequence[int], SampleSettings], Awaitable[list[SampleRecord]]
]


@dataclass(frozen=True)
class Trial:
    """How one trial of a protocol is sent: sampled (the journal row of the whole trial) and in
    exact mode (the reply holding the next token's log-probabilities)."""

    sample: Callable[[TrialRun, Condition, int, SampleSettings], Awaitable[SampleRecord]]
    distribution: Callable[[Backend, Condition], Awaitable[Reply]]
    continuation: bool = False  # the reply continues a text (see SampleSettings.continuation)
    # Several samples of the condition from one request (`Backend.sample_many`), one journal
    # row each; None: one request per sample.
    sample_many: SampleMany | None = None


async def _chat_many(
    run: TrialRun, condition: Condition, indices: Sequence[int], settings: SampleSettings
) -> list[SampleRecord]:
    """One request for len(indices) completions of a chat trial, a row per completion."""
    replies = await run.backend.sample_many(condition.messages, settings, len(indices))
    return [run.parsed_record(condition, i, r) for i, r in zip(indices, replies, strict=True)]


def _one_request(
    send: Send,
) -> Callable[[TrialRun, Condition, int, SampleSettings], Awaitable[SampleRecord]]:
    """A trial of one request whose reply is the answer."""

    async def sample(
        run: TrialRun, condition: Condition, index: int, settings: SampleSettings
    ) -> SampleRecord:
        reply = await send(run.backend, condition, settings)
        return run.parsed_record(condition, index, reply)

    return sample


async def _send_chat(backend: Backend, condition: Condition, settings: SampleSettings) -> Reply:
    return await backend.sample(condition.messages, settings)


async def _send_prefilled(
    backend: Backend, condition: Condition, settings: SampleSettings
) -> Reply:
    """The messages end on the partial assistant reply; the answer is its continuation. A server
    that repeats the prefill at the start of the content (llama.cpp) has it removed, once."""
    reply = await backend.sample(condition.messages, settings)
    prefill = condition.prefill or ""
    if prefill and reply.content is not None and reply.content.startswith(prefill):
        reply.content = reply.content[len(prefill) :]
        reply.meta["prefill_repeated"] = True
    return reply


async def _send_raw(backend: Backend, condition: Condition, settings: SampleSettings) -> Reply:
    return await backend.sample_raw(condition.raw_prompt or "", settings)


async def _chat_distribution(backend: Backend, condition: Condition) -> Reply:
    return await backend.distribution(condition.messages, condition.answers)


async def _raw_distribution(backend: Backend, condition: Condition) -> Reply:
    return await backend.distribution_raw(condition.raw_prompt or "", condition.answers)


async def _no_distribution(backend: Backend, condition: Condition) -> Reply:
    raise FlipbenchError("a chained trial is several replies: exact mode cannot read it")


async def _chained(
    run: TrialRun, condition: Condition, index: int, settings: SampleSettings
) -> SampleRecord:
    """The prompt, then each follow-up after the model's own reply. A failed turn fails the
    trial as a whole (journaled, then replaced); it is never continued. The row is the last
    turn's, with the answers joined by spaces, the cost summed and the earlier turns' request
    and response in its meta (`turn1`, …)."""
    messages = condition.messages
    reply = await run.backend.sample(messages, settings)
    record = run.parsed_record(condition, index, reply)
    record.meta["turn"] = 1
    earlier: dict[str, Any] = {}
    for turn, followup in enumerate(condition.followups, start=2):
        if not record.valid:
            return record
        messages = (
            *messages,
            {"role": "assistant", "content": reply.content or ""},
            {"role": "user", "content": followup},
        )
        try:
            next_reply = await run.backend.sample(messages, settings)
        except BudgetReached as exc:  # the earlier turns were paid: journal them, then stop
            run.stop_for_budget(exc)
            record.valid, record.answer = False, None
            record.invalid_category = BUDGET_STOP
            return record
        earlier[f"turn{turn - 1}"] = {"request": reply.request, "response": reply.response}
        following = run.parsed_record(condition, index, next_reply)
        following.meta.update(turn=turn, **earlier)
        if following.valid:
            following.answer = f"{record.answer} {following.answer}"
        paid = record.cost or following.cost
        following.cost = (record.cost or 0.0) + (following.cost or 0.0) if paid else None
        record, reply = following, next_reply
    return record


#: One trial logic per protocol kind.
TRIALS: dict[ProtocolKind, Trial] = {
    "single": Trial(_one_request(_send_chat), _chat_distribution, sample_many=_chat_many),
    "history": Trial(_one_request(_send_chat), _chat_distribution, sample_many=_chat_many),
    "prefill": Trial(_one_request(_send_prefilled), _chat_distribution, continuation=True),
    "raw": Trial(_one_request(_send_raw), _raw_distribution, continuation=True),
    "chained": Trial(_chained, _no_distribution),
}
