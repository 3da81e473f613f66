"""The local server's slots are sized to the run's longest request (`LocalBackend.size_for`):
small slots sample ~3x faster (bench/local_throughput.py), and a request must still fit."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flipbench.providers.local import MIN_SLOT_CONTEXT, SLOT_CONTEXT, LocalBackend
from flipbench.session import request_size
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import Condition


@pytest.mark.parametrize(
    ("experiment", "options", "context"),
    [
        ("single-flip", {}, MIN_SLOT_CONTEXT),  # ~42 prompt tokens, 16 decoded
        ("d-flips", {"d": 10}, MIN_SLOT_CONTEXT),
        ("word-bias", {}, MIN_SLOT_CONTEXT),
        ("bioinformatics", {}, SLOT_CONTEXT),  # reasoning: 4,096 tokens, capped
        ("bayes-needle-depth", {}, SLOT_CONTEXT),  # a long filler text
    ],
)
def test_slots_hold_the_longest_request_and_no_more(
    experiment: str, options: dict[str, int], context: int
) -> None:
    resolved = get_experiment(experiment).resolve(**options)
    prompt, reply = request_size(resolved)
    assert reply >= resolved.max_tokens and prompt > 0
    backend = LocalBackend("local/smollm2")
    backend.size_for(prompt, reply)
    assert backend.slot_context == context
    # room for the estimate's error (~4 characters a token) and the chat template's own text
    assert backend.slot_context >= min(SLOT_CONTEXT, 1.5 * prompt + reply + 128)
    # small slots take more completions a request (16 against 8); the server never holds
    # more context than 8 slots of the largest size
    assert backend.completions == (16 if context == MIN_SLOT_CONTEXT else 8)
    assert backend.slot_context * backend.completions <= SLOT_CONTEXT * 8


@dataclass
class _Trials:
    """What `request_size` reads of an experiment: its conditions and max_tokens."""

    max_tokens: int
    trials: list[Condition]

    def conditions(self) -> list[Condition]:
        return self.trials


def test_a_multi_turn_trial_counts_every_turn_and_reply() -> None:
    """A chained or history trial sends its follow-ups and the earlier replies back."""
    resolved = get_experiment("single-flip").resolve()
    first = resolved.conditions()[0]
    one = request_size(_Trials(resolved.max_tokens, [first]))  # type: ignore[arg-type]
    three = first.model_copy(update={"followups": ("Flip again.", "Flip again.")})
    prompt, reply = request_size(_Trials(resolved.max_tokens, [three]))  # type: ignore[arg-type]
    assert reply == 3 * resolved.max_tokens and prompt > one[0]
