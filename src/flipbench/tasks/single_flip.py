"""Exp 1 of Failure to Mix: one biased coin flip per reply (paper Fig. 1)."""

from __future__ import annotations

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition, flip_point

FLIP_PROMPT = (
    'I\'d like you to flip a biased coin that returns "1" {p}% of the time and "0" {q}% of '
    "the time. Please return a 1 token response simulating a single flip."
)
DEFAULT_P = tuple(str(p) for p in range(0, 101, 5))
_FINE_EXTRA = ("46", "47", "48", "49", "49.5", "50.5", "51", "52", "53", "54")
_LOGZOOM = (
    "49.7", "49.9", "49.97", "49.99", "49.997", "49.999", "49.9997", "49.9999", "49.99999",
    "49.999999", "50.000001", "50.00001", "50.0001", "50.0003", "50.001", "50.003", "50.01",
    "50.03", "50.1", "50.3",
)  # fmt: skip


def flip_grid(values: tuple[str, ...]) -> tuple[ConditionSpec, ...]:
    """Coin conditions sorted by p (each exact decimal, as the prompt prints it)."""
    return tuple(sorted((flip_point(v) for v in values), key=lambda s: s.x))


SINGLE_FLIP = ExperimentDefinition(
    name="single-flip",
    title="Single biased coin flip",
    version="1",
    prompt=FLIP_PROMPT,
    grids={
        "default": flip_grid(DEFAULT_P),
        "fine": flip_grid(DEFAULT_P + _FINE_EXTRA),
        "zoom": flip_grid(("45", "49", "50", "51", "55")),
        "logzoom": flip_grid(_LOGZOOM),
        "t2": flip_grid(("15", "30", "40", "45", "55", "70", "85")),
    },
    builder="flip",
    n=100,
    answers=("0", "1"),
    first="1",
    temperature=1.0,
    # Room for "**1**" or "Output: 1" while still short: a reply cut at this length that holds
    # no answer is counted as truncated, never guessed.
    max_tokens=16,
)
