"""The number `given-seed` hands the model: one per sample, uniform on [0, 1), reproducible.

It is a function of the run (its `--seed`, else its id), the condition and the sample index,
so a resumed run sends a sample exactly the number it would have sent the first time (a sample
index is never reused, so no two samples share one), and anyone can recompute it from the
journal. SHA-256 makes the numbers of consecutive indices independent for every practical
purpose; six decimals are what the prompt prints, and what is recorded.
"""

from __future__ import annotations

import hashlib

from flipbench.interventions.model import SEED_SLOT
from flipbench.tasks.definition import Condition

DECIMALS = 6


def given_number(base: str, condition: str, index: int) -> str:
    """The sample's number as printed: `0.482913`, uniform on the 10⁶ points of [0, 1)."""
    digest = hashlib.sha256(f"given-seed:{base}:{condition}:{index}".encode()).digest()
    value = int.from_bytes(digest[:8], "big") % 10**DECIMALS
    return f"0.{value:0{DECIMALS}d}"


def seeded_condition(condition: Condition, base: str, index: int) -> tuple[Condition, str]:
    """The condition with its number filled in (the last `{seed}` of its prompt: the
    intervention's, which follows the experiment's prompt), and that number."""
    number = given_number(base, condition.key, index)
    if condition.raw_prompt is not None:
        return condition.model_copy(
            update={"raw_prompt": _fill(condition.raw_prompt, number)}
        ), number
    messages = list(condition.messages)
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    messages[last] = {**messages[last], "content": _fill(messages[last]["content"], number)}
    return condition.model_copy(update={"messages": tuple(messages)}), number


def _fill(text: str, number: str) -> str:
    head, slot, tail = text.rpartition(SEED_SLOT)
    return head + number + tail if slot else text
