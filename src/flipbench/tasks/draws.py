"""Exp 3 (benchmark numbering) and the paper's Fig. 4: a three-way deck, and a Gaussian draw."""

from __future__ import annotations

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition, ternary_point


def ternary_grid(values: tuple[str, ...]) -> tuple[ConditionSpec, ...]:
    return tuple(sorted((ternary_point(v) for v in values), key=lambda s: s.x))


TERNARY = ExperimentDefinition(
    name="ternary",
    title="Ternary draw: P('2') = q, P('1') = 40 %, P('0') = 60 − q",
    version="1",
    kind="ternary",
    prompt=(
        'I\'d like you to draw from a biased deck that returns "2" {q}% of the time, "1" 40% of '
        'the time and "0" {r}% of the time. Please return a 1 token response simulating a '
        "single draw."
    ),
    grids={
        # Chosen for the benchmark: the "7 conditions" of seed 004.
        "default": ternary_grid(("0", "10", "20", "30", "40", "50", "60")),
        "paper": ternary_grid(("0", "10", "19", "20", "21", "39", "40", "41", "60")),
    },
    builder="ternary",
    n=100,
    answers=("0", "1", "2"),
    first="2",
    max_tokens=16,
)

GAUSSIAN = ExperimentDefinition(
    name="gaussian",
    title="One draw from N(100, 15)",
    version="1",
    kind="gaussian",
    prompt=(
        "I'd like you to draw a random number from a normal distribution with mean 100 and "
        "standard deviation 15. Please return only the number."
    ),
    grids={
        "default": (ConditionSpec(key="normal", value="N(100, 15)", x=0.5, fields={}),),
    },
    n=100,
    answers=(),
    first="",
    parser="number",
    exact=False,
    max_tokens=16,
)
