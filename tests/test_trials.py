"""The runner per trial protocol, against a scripted backend that records what it was sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from flipbench.errors import BudgetReached, FlipbenchError
from flipbench.progress import SilentReporter
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ExperimentDefinition, ResolvedExperiment
from flipbench.tasks.protocols import (
    AssistantPrefill,
    ChainedTurns,
    HistoryTurns,
    RawText,
    Turn,
)
from flipbench.trials import BUDGET_STOP
from tests.fake_backend import InProcessBackend

Script = Callable[[str, Any], str]


class ProtocolBackend(InProcessBackend):
    """Answers by what it is sent (`script(kind, messages or prompt)`), and records every call
    as (kind, what was sent, settings)."""

    prefix = "scripted"
    supports_exact = True
    supports_raw = True

    def __init__(self, script: Script, cost: float | None = None) -> None:
        super().__init__("scripted/test")
        self.script, self.cost = script, cost
        self.calls: list[tuple[str, Any, SampleSettings | None]] = []

    def _reply(self, kind: str, sent: Any, settings: SampleSettings | None) -> Reply:
        self.calls.append((kind, sent, settings))
        content = self.script(kind, sent)
        body = {"prompt": sent} if kind.endswith("raw") else {"messages": sent}
        response = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
        return Reply(body, response, ok=True, http_status=200, content=content,
                     finish_reason="stop", cost=self.cost)  # fmt: skip

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        await asyncio.sleep(0)
        return self._reply("chat", [dict(m) for m in messages], settings)

    async def sample_raw(self, prompt: str, settings: SampleSettings) -> Reply:
        await asyncio.sleep(0)
        return self._reply("raw", prompt, settings)

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        reply = self._reply("dist", [dict(m) for m in messages], None)
        reply.answer_logprobs = {"0": [math.log(0.2)], "1": [math.log(0.6)]}
        return reply

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        reply = self._reply("dist-raw", prompt, None)
        reply.answer_logprobs = {"0": [math.log(0.3)], "1": [math.log(0.1)]}
        return reply


def _experiment(protocol: Any = None, **changes: Any) -> ResolvedExperiment:
    data = get_experiment("single-flip").model_dump(exclude={"protocol", "followup"})
    if protocol is not None:
        data["protocol"] = protocol
    definition = ExperimentDefinition.model_validate({**data, **changes})
    return definition.resolve(p_values=["30"], n=3)


def _run(
    tmp_path: Path, experiment: ResolvedExperiment, backend: Backend, mode: str = "sample",
    constrained: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    journal = Journal(tmp_path / "j.db")
    journal.create_run(
        run_id="r", experiment=experiment.name, model="scripted/test", mode=mode, config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    settings = RunSettings(mode, 1, constrained, 5.0, None)
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    return [dict(r) for r in journal.samples("r")]


def test_history_is_sent_before_the_prompt(tmp_path: Path) -> None:
    history = HistoryTurns(
        turns=(Turn(role="user", content="x"), Turn(role="assistant", content="0"))
    )
    experiment = _experiment(history)
    backend = ProtocolBackend(lambda kind, sent: "1")
    rows = _run(tmp_path, experiment, backend)
    assert [r["answer"] for r in rows] == ["1"] * 3
    kinds = {kind for kind, _, _ in backend.calls}
    assert kinds == {"chat"}
    sent = backend.calls[0][1]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent == list(experiment.conditions()[0].messages)


def test_a_prefill_is_continued_and_a_repeated_prefill_removed(tmp_path: Path) -> None:
    experiment = _experiment(AssistantPrefill(prefill="My flip is"))
    # llama.cpp repeats the prefill in the content; OpenRouter-style servers do not
    replies = itertools.cycle(["My flip is 1", " 0", "My flip is  maybe 1"])
    backend = ProtocolBackend(lambda kind, sent: next(replies))
    rows = _run(tmp_path, experiment, backend, constrained=True)
    assert [(r["answer"], r["content"]) for r in rows] == [
        ("1", " 1"), ("0", " 0"), ("1", "  maybe 1"),
    ]  # fmt: skip
    repeated = [json.loads(r["meta_json"] or "{}").get("prefill_repeated") for r in rows]
    assert repeated == [True, None, True]
    for kind, sent, settings in backend.calls:
        assert kind == "chat" and sent[-1] == {"role": "assistant", "content": "My flip is"}
        assert settings is not None and settings.continuation  # " "? before a constrained answer
        assert settings.constrain_to == ("0", "1")


def test_a_raw_prompt_goes_to_the_raw_entry_point(tmp_path: Path) -> None:
    experiment = _experiment(RawText(), prompt="Flips at {p}%: 1 0")
    backend = ProtocolBackend(lambda kind, sent: " 1 and then")
    rows = _run(tmp_path, experiment, backend)
    assert [r["answer"] for r in rows] == ["1"] * 3
    assert {(kind, sent) for kind, sent, _ in backend.calls} == {("raw", "Flips at 30%: 1 0")}
    assert all(json.loads(r["request_json"]) == {"prompt": "Flips at 30%: 1 0"} for r in rows)
    assert all(s is not None and s.continuation for _, _, s in backend.calls)


def test_one_turn_chat_is_not_a_continuation(tmp_path: Path) -> None:
    backend = ProtocolBackend(lambda kind, sent: "1")
    _run(tmp_path, _experiment(), backend, constrained=True)
    assert all(s is not None and not s.continuation for _, _, s in backend.calls)


@pytest.mark.parametrize(
    ("protocol", "kind", "probs"),
    [
        (AssistantPrefill(prefill="My flip is"), "dist", {"0": 0.25, "1": 0.75}),
        (RawText(), "dist-raw", {"0": 0.75, "1": 0.25}),
    ],
)
def test_exact_mode_reads_the_next_token_after_a_prefill_or_a_raw_prompt(
    tmp_path: Path, protocol: Any, kind: str, probs: dict[str, float]
) -> None:
    experiment = _experiment(protocol)
    backend = ProtocolBackend(lambda kind, sent: "")
    rows = _run(tmp_path, experiment, backend, mode="exact")
    assert len(rows) == 1 and rows[0]["valid"]
    assert json.loads(rows[0]["probs_json"]) == pytest.approx(probs)
    assert [k for k, _, _ in backend.calls] == [kind]
    condition = experiment.conditions()[0]
    expected = condition.raw_prompt if kind == "dist-raw" else list(condition.messages)
    assert backend.calls[0][1] == expected


def _by_turn(kind: str, sent: Any) -> str:
    """Turn 1 fails every second trial; later turns answer by the follow-up they were sent."""
    if len(sent) == 1:
        _by_turn.first += 1  # type: ignore[attr-defined]
        return "maybe" if _by_turn.first % 2 == 0 else "1"  # type: ignore[attr-defined]
    return {"Again.": "0", "Last one.": "1"}[sent[-1]["content"]]


def test_chained_turns_of_any_length_continue_the_models_own_replies(tmp_path: Path) -> None:
    _by_turn.first = 0  # type: ignore[attr-defined]
    protocol = ChainedTurns(followups=("Again.", "Last one."))
    experiment = _experiment(protocol, d=3, exact=False)
    backend = ProtocolBackend(_by_turn, cost=0.5)
    rows = _run(tmp_path, experiment, backend)
    valid = [r for r in rows if r["valid"]]
    assert [r["answer"] for r in valid] == ["1 0 1"] * 3
    assert {r["invalid_category"] for r in rows if not r["valid"]} == {"unparseable"}
    assert all(r["cost"] == pytest.approx(1.5) for r in valid)  # three paid turns each
    meta = json.loads(valid[0]["meta_json"])
    assert meta["turn"] == 3 and set(meta) >= {"turn1", "turn2"}
    assert meta["turn1"]["request"]["messages"] == list(experiment.conditions()[0].messages)
    third = [sent for _, sent, _ in backend.calls if len(sent) == 5]
    assert len(third) == 3
    assert [m["content"] for m in third[0][1:]] == ["1", "Again.", "0", "Last one."]


class BudgetAfterFirstTurn(ProtocolBackend):
    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        if len(messages) > 1:
            raise BudgetReached(1.0, 1.0)
        return await super().sample(messages, settings)


def test_a_budget_stop_after_a_paid_first_turn_is_journaled(tmp_path: Path) -> None:
    experiment = get_experiment("chained-flips").resolve(p_values=["30"], n=3)
    backend = BudgetAfterFirstTurn(lambda kind, sent: "1", cost=0.25)
    with pytest.raises(BudgetReached):
        _run(tmp_path, experiment, backend)
    rows = list(Journal(tmp_path / "j.db", create=False).samples("r"))
    assert len(rows) == 1
    row = rows[0]
    assert (row["valid"], row["answer"], row["invalid_category"]) == (0, None, BUDGET_STOP)
    assert row["cost"] == 0.25 and json.loads(row["meta_json"])["turn"] == 1


class ChatOnly(ProtocolBackend):
    supports_raw = False


def test_a_backend_without_raw_prompts_refuses_before_any_call(tmp_path: Path) -> None:
    backend = ChatOnly(lambda kind, sent: "1")
    with pytest.raises(FlipbenchError, match="raw prompt needs a completions endpoint"):
        _run(tmp_path, _experiment(RawText()), backend)
    assert backend.calls == []
