"""Several samples per request (`Backend.sample_many`): one journal row and one index per
completion, topped up to N valid, attempt caps and resume unchanged (the scripted backend of
test_runner.py, with `n` completions per request)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from flipbench.progress import SilentReporter
from flipbench.providers.base import Message, Reply, SampleSettings
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from tests.test_runner import ScriptedBackend, _journal_for, _rows, stop_after_rows


class BatchBackend(ScriptedBackend):
    """Up to `per_request` completions per request; each request's size is recorded."""

    def __init__(self, contents: Iterator[str | None], per_request: int) -> None:
        super().__init__(contents)
        self.per_request = per_request
        self.sizes: list[int] = []

    def completions_per_request(self, settings: SampleSettings) -> int:
        return self.per_request

    async def sample_many(
        self, messages: Sequence[Message], settings: SampleSettings, count: int
    ) -> list[Reply]:
        self.sizes.append(count)
        replies = []
        for _ in range(count):
            reply = await self.sample(messages, settings)
            reply.meta["choice"] = [len(replies), count]
            replies.append(reply)
        return replies


def _run(journal: Journal, backend: BatchBackend, n: int, factor: float = 5.0) -> Runner:
    experiment = get_experiment("single-flip").resolve(grid="zoom", n=n)
    settings = RunSettings("sample", 2, False, factor, 7)
    runner = Runner(journal, "r", experiment, backend, settings, SilentReporter())
    asyncio.run(runner.run())
    return runner


def test_each_completion_is_its_own_row_with_its_own_index(tmp_path: Path) -> None:
    experiment = get_experiment("single-flip").resolve(grid="zoom", n=10)
    journal = _journal_for(tmp_path, experiment)
    backend = BatchBackend(itertools.cycle(["1", "maybe", "0"]), per_request=4)
    runner = _run(journal, backend, n=10)
    rows = _rows(journal)
    assert Counter(c for c, _, v, _ in rows if v) == {c.key: 10 for c in experiment.conditions()}
    for key in {c for c, _, _, _ in rows}:
        indices = sorted(i for c, i, _, _ in rows if c == key)
        assert indices == list(range(len(indices)))  # no gap, no index reused
    assert max(backend.sizes) == 4 and len(backend.sizes) < len(rows)
    assert runner.requests == len(rows) and runner.short_conditions == []
    # a request never asks for more than its condition still wants: 10 valid of 2 in 3
    # replies valid needs 15 attempts; no condition gets more than N + a batch of waste
    per_condition = Counter(c for c, _, _, _ in rows)
    assert all(count <= 15 + 3 for count in per_condition.values())


def test_a_batch_never_exceeds_the_attempt_cap(tmp_path: Path) -> None:
    experiment = get_experiment("single-flip").resolve(grid="zoom", n=4)
    journal = _journal_for(tmp_path, experiment)
    backend = BatchBackend(itertools.repeat("I cannot flip coins."), per_request=8)
    runner = _run(journal, backend, n=4, factor=2.5)
    assert Counter(c for c, _, _, _ in _rows(journal)) == {
        c.key: 10 for c in experiment.conditions()
    }
    assert len(runner.short_conditions) == 5 and max(backend.sizes) <= 4  # ≤ N wanted at once


def test_a_resumed_run_tops_up_in_batches_after_the_last_index(tmp_path: Path) -> None:
    experiment = get_experiment("single-flip").resolve(grid="zoom", n=6)
    journal = _journal_for(tmp_path, experiment)
    first = BatchBackend(itertools.repeat("1"), per_request=4)
    settings = RunSettings("sample", 1, False, 5.0, 7)
    runner = Runner(journal, "r", experiment, first, settings, SilentReporter())
    stop_after_rows(runner, journal, 8)
    before = _rows(journal)
    second = BatchBackend(itertools.repeat("0"), per_request=4)
    _run(journal, second, n=6)
    after = _rows(journal)
    assert after[: len(before)] == before and len(after) == 30
    assert Counter(c for c, _, v, _ in after if v) == {c.key: 6 for c in experiment.conditions()}
    assert len({(c, i) for c, i, _, _ in after}) == 30
