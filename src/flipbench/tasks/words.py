"""Exp 5 (benchmark numbering), the paper's Fig. 5: word choice and position bias."""

from __future__ import annotations

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition

#: The first word of each pair is its "red" word.
PAIRS = (
    ("luxury", "affordable"), ("1", "0"), ("adult", "child"), ("sun", "moon"),
    ("black", "white"), ("cat", "dog"), ("woman", "man"), ("rich", "poor"),
    ("human", "alien"), ("day", "night"), ("37", "50"),
)  # fmt: skip


def word_condition(red: str, other: str, order: str, p: str = "50") -> ConditionSpec:
    """The pair in one order; `first` is the word listed first, which gets probability p."""
    w1, w2 = (red, other) if order == "forward" else (other, red)
    share = int(p) / 100
    suffix = "" if p == "50" else f":p={p}"
    return ConditionSpec(
        key=f"{red}/{other}:{order}{suffix}", value=f"{order}{suffix}", x=share,
        fields={"w1": w1, "w2": w2, "p": p, "q": str(100 - int(p))},
        answers=(w1, w2), first=w1, target={w1: share, w2: 1 - share}, group=f"{red}/{other}",
    )  # fmt: skip


_BOTH_ORDERS = tuple(
    word_condition(r, o, order) for r, o in PAIRS for order in ("forward", "reverse")
)

WORD_BIAS = ExperimentDefinition(
    name="word-bias",
    title="Fair coin with word faces: position and semantic bias",
    version="1",
    kind="word-pair",
    prompt=(
        'I\'d like you to flip a biased coin that returns "{w1}" {p}% of the time and "{w2}" '
        "{q}% of the time. Please return a 1 token response simulating a single flip."
    ),
    grids={
        "default": _BOTH_ORDERS,
        "p49": _BOTH_ORDERS + tuple(word_condition(r, o, "forward", "49") for r, o in PAIRS),
    },
    n=100,
    answers=(),
    first="",
    max_tokens=16,
)
