"""Scheduling: top up to N valid, replace invalid replies, cap attempts, never reuse an index.

The backend here is a scripted in-process stand-in: the runner's bookkeeping is what is under
test, and a script makes invalid replies and failures happen exactly where the test wants them.
The real model runs through the same runner in test_local.py, test_cli.py and test_resume.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from flipbench.errors import FlipbenchError
from flipbench.progress import SilentReporter
from flipbench.providers.base import Message, Reply, SampleSettings
from flipbench.runner import Runner, RunSettings, sample_seed
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ResolvedExperiment
from tests.fake_backend import InProcessBackend


class ScriptedBackend(InProcessBackend):
    prefix = "scripted"

    def __init__(self, contents: Iterator[str | None], delay: float = 0.001) -> None:
        super().__init__("scripted/test")
        self.contents, self.delay = contents, delay
        self.inflight = self.max_inflight = self.calls = 0
        self.seeds: list[int | None] = []
        self.settings: list[SampleSettings] = []

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        self.calls += 1
        self.seeds.append(settings.seed)
        self.settings.append(settings)
        await asyncio.sleep(self.delay)
        self.inflight -= 1
        content = next(self.contents)
        body = {"messages": list(messages), "temperature": settings.temperature}
        if content is None:
            return Reply(body, None, ok=False, error="ConnectionError: scripted")
        response = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
        return Reply(body, response, ok=True, http_status=200, content=content,
                     finish_reason="stop")  # fmt: skip


def _setup(tmp_path: Path, n: int, grid: str = "zoom") -> tuple[Journal, ResolvedExperiment]:
    experiment = get_experiment("single-flip").resolve(grid=grid, n=n)
    return _journal_for(tmp_path, experiment), experiment


def _journal_for(tmp_path: Path, experiment: ResolvedExperiment) -> Journal:
    journal = Journal(tmp_path / "j.db")
    journal.create_run(
        run_id="r", experiment=experiment.name, model="scripted/test", mode="sample", config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    return journal


def _settings(concurrency: int = 4, factor: float = 5.0, seed: int | None = None) -> RunSettings:
    return RunSettings("sample", concurrency, False, factor, seed)


def _rows(journal: Journal) -> list[tuple[str, int, int, str | None]]:
    return [
        (r["condition"], r["sample_index"], r["valid"], r["invalid_category"])
        for r in journal.samples("r")
    ]


def stop_after_rows(runner: Runner, journal: Journal, rows: int) -> None:
    """Run until the journal holds `rows` rows, then cancel: an interrupted run to resume."""

    async def partial() -> None:
        task = asyncio.create_task(runner.run())
        while len(_rows(journal)) < rows:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(partial())


def test_invalid_replies_are_journaled_and_replaced_until_n_valid(tmp_path: Path) -> None:
    journal, experiment = _setup(tmp_path, n=10)
    script = itertools.cycle(["1", "maybe", "0", "", "0 or 1", "**1**"])
    backend = ScriptedBackend(script)
    runner = Runner(journal, "r", experiment, backend, _settings(), SilentReporter())
    asyncio.run(runner.run())
    rows = _rows(journal)
    valid = Counter(c for c, _, v, _ in rows if v)
    assert valid == {c.key: 10 for c in experiment.conditions()}
    assert len({(c, i) for c, i, _, _ in rows}) == len(rows)  # no index reused
    for key in valid:
        indices = sorted(i for c, i, _, _ in rows if c == key)
        assert indices == list(range(len(indices)))
    categories = Counter(cat for _, _, v, cat in rows if not v)
    assert set(categories) == {"unparseable", "empty", "ambiguous"}
    assert backend.max_inflight <= 4
    assert runner.short_conditions == []


def test_high_concurrency_never_overshoots_n(tmp_path: Path) -> None:
    journal, experiment = _setup(tmp_path, n=3)
    backend = ScriptedBackend(itertools.repeat("1"), delay=0.005)
    asyncio.run(Runner(journal, "r", experiment, backend, _settings(32), SilentReporter()).run())
    assert backend.calls == 15  # 5 conditions × 3: nothing wasted
    assert len(_rows(journal)) == 15


def test_attempt_cap_stops_a_condition_short_and_says_so(tmp_path: Path) -> None:
    journal, experiment = _setup(tmp_path, n=4)
    backend = ScriptedBackend(itertools.repeat("I cannot flip coins."))
    runner = Runner(journal, "r", experiment, backend, _settings(factor=2.5), SilentReporter())
    asyncio.run(runner.run())
    assert backend.calls == 5 * 10  # ceil(4 × 2.5) attempts per condition, then stop
    assert len(runner.short_conditions) == 5


def test_resume_tops_up_only_what_is_missing(tmp_path: Path) -> None:
    journal, experiment = _setup(tmp_path, n=6)
    first = ScriptedBackend(itertools.chain(["1"] * 7, itertools.repeat("0")))
    runner = Runner(journal, "r", experiment, first, _settings(1), SilentReporter())
    stop_after_rows(runner, journal, 9)
    before = _rows(journal)
    assert 9 <= len(before) < 30
    second = ScriptedBackend(itertools.repeat("0"))
    asyncio.run(Runner(journal, "r", experiment, second, _settings(), SilentReporter()).run())
    after = _rows(journal)
    assert after[: len(before)] == before
    assert second.calls == 30 - len(before)
    assert Counter(c for c, _, v, _ in after if v) == {c.key: 6 for c in experiment.conditions()}


def test_a_run_of_failures_stops_with_the_last_error(tmp_path: Path) -> None:
    journal, experiment = _setup(tmp_path, n=50)
    backend = ScriptedBackend(itertools.repeat(None))
    runner = Runner(journal, "r", experiment, backend, _settings(1), SilentReporter())
    with pytest.raises(FlipbenchError, match=r"20 requests in a row failed.*scripted"):
        asyncio.run(runner.run())
    assert all(cat == "error" for _, _, _, cat in _rows(journal))


def test_seeds_are_per_sample_and_reproducible(tmp_path: Path) -> None:
    journal, experiment = _setup(tmp_path, n=5)
    backend = ScriptedBackend(itertools.repeat("1"))
    runner = Runner(journal, "r", experiment, backend, _settings(seed=7), SilentReporter())
    asyncio.run(runner.run())
    assert len(set(backend.seeds)) == 25
    assert sample_seed(7, "p=45", 0) == sample_seed(7, "p=45", 0) != sample_seed(7, "p=45", 1)


class ReasoningBackend(ScriptedBackend):
    """Replies like a reasoning model that ran out of tokens before its visible answer."""

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        reply = await super().sample(messages, settings)
        reply.content, reply.finish_reason = "", "length"
        reply.meta["reasoning"] = "A 70 % coin... 0 is less likely, so I will answer 1"
        return reply


@pytest.mark.parametrize("allowed", [False, True])
def test_answer_from_reasoning_only_when_asked_and_marked(tmp_path: Path, allowed: bool) -> None:
    journal, experiment = _setup(tmp_path, n=3)
    settings = RunSettings("sample", 2, False, 2.0, None, answer_from_reasoning=allowed)
    backend = ReasoningBackend(itertools.repeat("ignored"))
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    rows = list(journal.samples("r"))
    if allowed:
        assert len(rows) == 15 and all(r["valid"] and r["answer"] == "1" for r in rows)
        assert all('"answer_source": "reasoning"' in r["meta_json"] for r in rows)
    else:  # never silently: each condition stops at its attempt cap, all truncated
        assert len(rows) == 30 and {r["invalid_category"] for r in rows} == {"truncated"}


@pytest.mark.parametrize("name", ["gaussian", "d-flips"])
def test_answer_from_reasoning_does_not_apply_to_numbers_or_several_answers(
    tmp_path: Path, name: str
) -> None:
    """No single answer of a known set to read: the reply stays invalid, nothing raises."""
    experiment = get_experiment(name).resolve(n=2)
    journal = _journal_for(tmp_path, experiment)
    settings = RunSettings("sample", 2, False, 1.0, None, answer_from_reasoning=True)
    backend = ReasoningBackend(itertools.repeat("ignored"))
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    rows = list(journal.samples("r"))
    assert rows and not any(r["valid"] for r in rows)
    assert {r["invalid_category"] for r in rows} == {"truncated"}


class ConversationBackend(ScriptedBackend):
    """Replies by turn: what it was sent decides the answer, so turn order is checkable."""

    def __init__(self) -> None:
        super().__init__(itertools.repeat(""))
        self.conversations: list[list[Message]] = []

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        self.conversations.append(list(messages))
        first_turn = len(messages) == 1
        # The first turn fails every third trial; the second turn always answers "0".
        content = ("maybe" if len(self.conversations) % 3 == 1 else "1") if first_turn else "0"
        self.contents = iter([content])
        return await super().sample(messages, settings)


def test_chained_flips_continue_the_models_own_reply_and_retry_failed_trials(
    tmp_path: Path,
) -> None:
    experiment = get_experiment("chained-flips").resolve(p_values=["30"], n=4)
    journal = _journal_for(tmp_path, experiment)
    backend = ConversationBackend()
    asyncio.run(Runner(journal, "r", experiment, backend, _settings(1), SilentReporter()).run())
    rows = list(journal.samples("r"))
    valid = [r for r in rows if r["valid"]]
    assert [r["answer"] for r in valid] == ["1 0"] * 4
    assert {r["invalid_category"] for r in rows if not r["valid"]} == {"unparseable"}
    second_turns = [c for c in backend.conversations if len(c) == 3]
    assert len(second_turns) == 4
    assert all(c[1] == {"role": "assistant", "content": "1"} for c in second_turns)
    assert all(
        c[2] == {"role": "user", "content": "Please do it one more time."} for c in second_turns
    )
    # A failed first turn is never continued: every conversation that reached turn 2 began
    # with a valid flip, and the failed trials are journaled and replaced.
    assert len(rows) == len(backend.conversations) - 4


def test_d_flips_constrain_to_d_answers_and_read_sequences(tmp_path: Path) -> None:
    experiment = get_experiment("d-flips").resolve(p_values=["50"], n=3, d=3)
    journal = _journal_for(tmp_path, experiment)
    backend = ScriptedBackend(iter(["1 0 1", "1 0", "0 0 1", "1 1 1", "x"]))
    settings = RunSettings("sample", 1, True, 5.0, None)
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    rows = [(r["answer"], r["invalid_category"]) for r in journal.samples("r")]
    assert rows == [("1 0 1", None), (None, "wrong_count"), ("0 0 1", None), ("1 1 1", None)]
    assert {(s.constrain_to, s.constrain_count) for s in backend.settings} == {(("0", "1"), 3)}
