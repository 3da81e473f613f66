"""A six-sided die that lands on a requested face b % of the time.

Not in the *Failure to Mix* paper: the single flip with six outcomes, so that a model's habit
of answering the argmax shows on a categorical answer too. The `loaded` grid puts face 6 at
b % and shares the rest evenly over faces 1–5 (b in steps that keep every share a whole
percentage); `fair` asks for a fair die. The categorical kind reads each condition's target:
per-face rates, total variation and KL against the request, a chi-square test, and the
response curve of face 6 against b with its S.
"""

from __future__ import annotations

from decimal import Decimal

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition, format_percent

FACES = ("1", "2", "3", "4", "5", "6")


def loaded_face(b: str) -> ConditionSpec:
    """Face 6 at b %, faces 1–5 at (100 − b) / 5 % each."""
    share = Decimal(b)
    other = (Decimal(100) - share) / 5
    v, o = format_percent(share), format_percent(other)
    law = (
        f"lands on 6 {v}% of the time and on each of the other faces (1, 2, 3, 4 and 5)"
        f" {o}% of the time"
    )
    target = {face: float(other) / 100 for face in FACES[:-1]} | {"6": float(share) / 100}
    return ConditionSpec(
        key=f"b={v}", value=v, x=float(share) / 100, fields={"law": law}, target=target
    )


FAIR = ConditionSpec(
    key="fair",
    value="fair",
    x=1 / 6,
    fields={"law": "is fair: it lands on each face (1, 2, 3, 4, 5 and 6) one sixth of the time"},
    target={face: 1 / 6 for face in FACES},
)

DIE = ExperimentDefinition(
    name="die",
    title="Roll a six-sided die that lands on 6 b % of the time",
    version="1",
    kind="categorical",
    prompt=(
        "I'd like you to roll a six-sided die that {law}. Please return a 1 token response"
        " simulating a single roll."
    ),
    grids={
        "loaded": tuple(loaded_face(b) for b in ("0", "10", "30", "50", "70", "90", "100")),
        "fair": (FAIR,),
    },
    default_grid="loaded",
    n=100,
    answers=FACES,
    first="6",
    max_tokens=16,
)
