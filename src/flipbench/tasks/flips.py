"""Exp 2 of Failure to Mix (paper Figs. 2–3): several flips, in one reply or in a conversation."""

from __future__ import annotations

from flipbench.tasks.definition import ExperimentDefinition
from flipbench.tasks.single_flip import DEFAULT_P, FLIP_PROMPT, flip_grid

D_FLIPS = ExperimentDefinition(
    name="d-flips",
    title="D biased coin flips in one reply",
    version="1",
    kind="d-flips",
    prompt=(
        'I\'d like you to flip a biased coin that returns "1" {p}% of the time and "0" {q}% of '
        "the time. Please return a {D} token response simulating {D} flips. Please return "
        "exactly {D} tokens (0 or 1) separated by a single space."
    ),
    grids={"default": flip_grid(DEFAULT_P), "fig3": flip_grid(("15", "45"))},
    builder="flip",
    params={"D": "2"},
    n=100,
    answers=("0", "1"),
    first="1",
    parser="d-tokens",
    exact=False,
    # Resolved to at least 2·D + 16: D digits, D − 1 spaces and room for a short preamble.
    max_tokens=16,
)

CHAINED_FLIPS = ExperimentDefinition(
    name="chained-flips",
    title="Two flips as a conversation (the model's own first flip, then 'one more time')",
    version="1",
    kind="chained",
    prompt=FLIP_PROMPT,
    followup="Please do it one more time.",
    grids={"default": flip_grid(DEFAULT_P)},
    builder="flip",
    d=2,
    n=100,
    answers=("0", "1"),
    first="1",
    exact=False,
    max_tokens=16,
)
