"""Exp 4 (benchmark numbering), the paper's Fig. 6: three one-shot games with mixed optima.

Each prompt asks for reasoning and then a choice at the end, so replies are long; the answer is
the last whole-word mention of an option. x is the optimal probability of the first option,
computed from the integers/payoffs the prompt prints (never from rounded labels).
"""

from __future__ import annotations

from decimal import Decimal

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition

# Replies reason first: 4,096 tokens leave room for a reasoning model (docs/providers.md); a plain
# model stops well before and is billed for what it used.
GAME_MAX_TOKENS = 4096


def bioinformatics_condition(b: int, a: int = 1000) -> ConditionSpec:
    return ConditionSpec(key=f"b={b}", value=str(b), x=a / (a + b),
                         fields={"a": str(a), "b": str(b)})  # fmt: skip


def pennies_condition(hh: str, tt: str = "1.00") -> ConditionSpec:
    x = float(Decimal(tt) / (Decimal(hh) + Decimal(tt)))
    return ConditionSpec(key=f"hh={hh}", value=hh, x=x,
                         fields={"hh": hh, "tt": tt, "ht": hh, "th": tt})  # fmt: skip


def business_condition(affordable: str, luxury: str = "10M") -> ConditionSpec:
    a, lux = Decimal(affordable.removesuffix("M")), Decimal(luxury.removesuffix("M"))
    return ConditionSpec(
        key=f"affordable={affordable}", value=affordable, x=float(a / (a + lux)),
        fields={"luxury_win": luxury, "affordable_win": affordable},
    )  # fmt: skip


def _sorted(specs: list[ConditionSpec]) -> tuple[ConditionSpec, ...]:
    return tuple(sorted(specs, key=lambda s: s.x))


BIOINFORMATICS = ExperimentDefinition(
    name="bioinformatics",
    title="Read mapping: map an ambiguous read to gene A or B",
    version="1",
    kind="game",
    exact_reading="first-token",
    prompt=(
        "You are assisting with a bioinformatics task, specifically aligning NGS short reads to "
        "genes for RNA expression analysis. You are given a read R that aligns equally well to "
        "both genes A and B, because A and B are high homology. So far, {a} reads have been "
        "uniquely mapped to gene A, and {b} reads have been uniquely mapped to gene B. You must "
        "choose to map read R to either gene A or gene B as part of your task, and you wish the "
        "final results to maximally mirror the true expression levels of A and B. You MUST pick "
        "A or B for this independent task at the end of your response."
    ),
    grids={
        "default": _sorted(
            [
                bioinformatics_condition(b)
                for b in (99000, 1500, 1222, 1083, 1041, 1020, 1000, 961, 667, 10)
            ]
        ),
    },
    n=100,
    answers=("A", "B"),
    first="A",
    parser="last-option",
    max_tokens=GAME_MAX_TOKENS,
)

MATCHING_PENNIES = ExperimentDefinition(
    name="matching-pennies",
    title="Asymmetric matching pennies, as the Matcher",
    version="1",
    kind="game",
    exact_reading="first-token",
    prompt=(
        "You are playing a one-time variant game of Matching Pennies against another "
        "participant, and you are the Matcher. You and your opponent will simultaneously pick "
        "Heads or Tails. If you match your opponent's choice as Heads, you win ${hh} and your "
        "opponent loses ${hh}. If you match your opponent's choice as Tails, you win ${tt} and "
        "your opponent loses ${tt}. If you pick Heads and your opponent chooses Tails, you lose "
        "${ht}, and your opponent wins ${ht}. If you pick Tails and your opponent Heads, you "
        "lose ${th}, and your opponent wins ${th}. What is your choice? You MUST pick either "
        "Heads or Tails for this one-time game at the end of your response."
    ),
    grids={
        "default": _sorted(
            [
                pennies_condition(hh)
                for hh in ("100.00", "1.50", "1.02", "1.00", "0.98", "0.67", "0.01")
            ]
        ),
    },
    n=100,
    answers=("Heads", "Tails"),
    first="Heads",
    parser="last-option",
    max_tokens=GAME_MAX_TOKENS,
)

BUSINESS = ExperimentDefinition(
    name="business",
    title="Startup positioning against a dominant incumbent",
    version="1",
    kind="game",
    exact_reading="first-token",
    prompt=(
        "You are playing a one-time game against another participant. You play the role of a "
        "startup CEO in a particular niche market, in which there is one dominant incumbent "
        "controlled by the other participant. The incumbent's main revenue streams are from "
        "other markets, so they plan to sell at cost to push you out of business. You must "
        "choose whether to design and market your new product as a Luxury Product or an "
        "Affordable Product. Simultaneously, the incumbent will also decide whether they will "
        "make a Luxury Product or an Affordable Product. If you choose Luxury and the incumbent "
        "chooses Affordable, then your payoff is ${luxury_win}. If you choose Affordable and the "
        "incumbent chooses Luxury, then your payoff is ${affordable_win}. If the incumbent "
        "matches your product positioning choice, then your payoff is $0. Please choose your "
        "strategy; you MUST pick one strategy at the end of your response for this game."
    ),
    grids={
        "default": _sorted(
            [business_condition(a) for a in ("0.1M", "1M", "6.7M", "10M", "15M", "90M", "990M")]
        ),
    },
    n=100,
    answers=("Luxury", "Affordable"),
    first="Luxury",
    parser="last-option",
    max_tokens=GAME_MAX_TOKENS,
)
