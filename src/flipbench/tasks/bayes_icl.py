"""In-context evidence and the posterior chain (the Bayesian battery's experiments 3 and 4).

`bayes-icl` shows the model a flip sequence, `I tossed a coin and it landed on heads, then
tails, then …, then`, drawn i.i.d. from θ, and reads P(heads) for the next flip; its exact
answer is the Beta(1, 1) posterior predictive of *that very sequence*, so the kind can tell
the model's own error from the noise of a short sequence (docs/experiments.md). `bayes-chain`
grows one sequence whose bias switches (θ₁ = 0.75 for the first half, θ₂ = 0.25 after) and
reads P(heads) after every prefix, so that a memory factor γ can be fitted to the curve.

Why the sequences are data: every flip is drawn here, when the module is imported, from
`random.Random` seeded with a string built from the recorded `SEED`, θ and the sequence
index (string seeds are hashed with SHA-512, the same on every platform and Python version).
The drawn text is each condition's `flips` field, so it enters the definition's hash, and the
seed travels in `params` too: a changed seed is a different experiment. Sequences are nested:
the N = 10 prompt of a sequence starts with its N = 5 prompt, as the spec asks.

Every condition carries what the kind needs to compute the Bayesian answer in its prompt
fields (θ, N, heads, tails, the sequence, the statement), read back from the definition's
specs by condition key (`kinds.bayes_icl`).

Framing: the embedded SmolLM2-Instruct is a chat model, so both experiments use the Berkeley
release's chat framing: the user asks for a coin toss (after the verbal statement, if any)
and the assistant's reply is prefilled with the sequence, ending where the answer's token
(" heads") begins (`AssistantPrefill`). `bayes-icl-base` is the raw-text framing for base
models (`RawText`), on the same sequences.
"""

from __future__ import annotations

import random
from decimal import Decimal
from functools import cache

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition, format_percent
from flipbench.tasks.protocols import AssistantPrefill, RawText

#: The recorded seed of every sequence (a changed seed is a different definition hash).
SEED = 2026
STEM = "I tossed a coin and it landed on"
ASK = "Please toss a coin and tell me whether it landed on heads or tails."
#: The verbal statement (spec experiment 2), chat and base wording; b in percent.
STATEMENT_CHAT = "When you flip coins, they land on heads {b}% of the time. "
STATEMENT_BASE = "When I flip coins they land on heads {b}% of the time. "
ANSWERS = ("heads", "tails")

THETAS = tuple(str(10 * i) for i in range(11))  # percent
LENGTHS = (0, 1, 3, 5, 10, 20, 50, 100)
STATEMENTS = ("none", "agreeing", "contradicting")
SEQUENCES = 3

#: The posterior chain: θ₁ for the first `switch` flips, θ₂ after.
CHAIN_THETAS = ("75", "25")
CHAIN_SWITCH = 50
CHAIN_SEQUENCES = 5


@cache  # a grid asks for each sequence once per length: ~2,000 draws at import, ~300 distinct
def draw_flips(seed: int, label: str, index: int, thetas: tuple[str, ...], run: int) -> str:
    """`run` flips per θ (percent) in turn, as a string of H and T; the same on every platform.

    One generator per (seed, label, sequence index): a sequence's first flips do not depend
    on how long it is drawn, so a grid's sequences are nested prefixes of one draw."""
    rng = random.Random(f"flipbench-bayes:{seed}:{label}:{index}")
    flips = []
    for theta in thetas:
        share = float(Decimal(theta) / 100)
        flips += ["H" if rng.random() < share else "T" for _ in range(run)]
    return "".join(flips)


def flips_text(flips: str) -> str:
    """`H T` as the prompt's continuation ` heads, then tails, then` (empty for no flips):
    appended to the stem, the prompt ends where the next answer's token begins."""
    return "".join(f" {'heads' if f == 'H' else 'tails'}, then" for f in flips)


def _statement(kind: str, theta: str, chat: bool) -> tuple[str, str]:
    """The stated b (percent, "" for none) and the statement's text."""
    if kind == "none":
        return "", ""
    b = theta if kind == "agreeing" else format_percent(Decimal(100) - Decimal(theta))
    return b, (STATEMENT_CHAT if chat else STATEMENT_BASE).format(b=b)


def icl_point(
    theta: str, n: int, index: int, statement: str, *, seed: int = SEED, chat: bool = True
) -> ConditionSpec:
    """One prompt of `bayes-icl`: the first `n` flips of sequence `index` drawn from θ."""
    flips = draw_flips(seed, f"icl:{theta}", index, (theta,), max(LENGTHS))[:n]
    b, text = _statement(statement, theta, chat)
    share = float(Decimal(theta) / 100)
    heads = flips.count("H")
    key = f"t={theta},n={n},s={index},{statement}"
    fields = {
        "flips": flips_text(flips), "statement": text, "stated": statement, "b": b,
        "theta": theta, "n": str(n), "heads": str(heads), "tails": str(n - heads),
        "sequence": str(index), "history": flips,
    }  # fmt: skip
    return ConditionSpec(
        key=key,
        value=key,
        x=share,
        fields=fields,
        target={"heads": share, "tails": 1 - share},
        group=f"t={theta},s={index},{statement}",
    )


def icl_grid(
    thetas: tuple[str, ...],
    lengths: tuple[int, ...],
    sequences: int,
    statements: tuple[str, ...],
    *,
    chat: bool = True,
) -> tuple[ConditionSpec, ...]:
    """θ × statement × sequence × N; the empty sequence (N = 0) once per θ and statement,
    and no contradicting statement at θ = 50 % (it would agree)."""
    specs = []
    for theta in thetas:
        for statement in statements:
            if statement == "contradicting" and Decimal(theta) == 50:
                continue
            for index in range(1, sequences + 1):
                for n in lengths:
                    if n == 0 and index > 1:
                        continue
                    specs.append(icl_point(theta, n, index, statement, chat=chat))
    return tuple(specs)


def chain_points(
    index: int, switch: int = CHAIN_SWITCH, *, seed: int = SEED, step: int = 1
) -> tuple[ConditionSpec, ...]:
    """Every `step`-th prefix 0…2·switch of chain sequence `index` (θ₁ then θ₂)."""
    flips = draw_flips(seed, f"chain:{switch}", index, CHAIN_THETAS, switch)
    specs = []
    for k in range(0, len(flips) + 1, step):
        prefix = flips[:k]
        heads = prefix.count("H")
        key = f"s={index},k={k}"
        fields = {
            "flips": flips_text(prefix), "statement": "", "k": str(k), "n": str(k),
            "heads": str(heads), "tails": str(k - heads), "sequence": str(index),
            "history": prefix, "sequence_flips": flips, "switch": str(switch),
            "theta1": CHAIN_THETAS[0], "theta2": CHAIN_THETAS[1],
        }  # fmt: skip
        specs.append(
            ConditionSpec(key=key, value=key, x=k / len(flips), fields=fields, group=f"s={index}")
        )
    return tuple(specs)


def _chain_grid(sequences: int, switch: int) -> tuple[ConditionSpec, ...]:
    return tuple(s for i in range(1, sequences + 1) for s in chain_points(i, switch))


def _definition(
    name: str,
    title: str,
    prompt: str,
    protocol: AssistantPrefill | RawText,
    grids: dict[str, tuple[ConditionSpec, ...]],
) -> ExperimentDefinition:
    """What the battery's experiments share: the answers, the kind, the seed in `params`."""
    return ExperimentDefinition(
        name=name, title=title, version="1", kind="bayes-icl", prompt=prompt,
        protocol=protocol, grids=grids, params={"seed": str(SEED)}, n=100, answers=ANSWERS,
        first="heads", max_tokens=4,
    )  # fmt: skip


BAYES_ICL = _definition(
    "bayes-icl",
    "In-context evidence: P(heads) after N flips from θ, against the posterior",
    "{statement}" + ASK,
    AssistantPrefill(prefill=STEM + "{flips}"),
    {
        "default": icl_grid(THETAS, LENGTHS, SEQUENCES, STATEMENTS),
        "evidence": icl_grid(THETAS, LENGTHS, SEQUENCES, ("none",)),
        "medium": icl_grid(("10", "30", "50", "70", "90"), LENGTHS, 1, ("none",)),
        "small": icl_grid(("20", "50", "80"), (0, 3, 10), 1, ("none",)),
    },
)

BAYES_ICL_BASE = _definition(
    "bayes-icl-base",
    "In-context evidence for base models (raw text): P(heads) after N flips from θ",
    "{statement}" + STEM + "{flips}",
    RawText(),
    {
        "default": icl_grid(THETAS, LENGTHS, SEQUENCES, STATEMENTS, chat=False),
        "evidence": icl_grid(THETAS, LENGTHS, SEQUENCES, ("none",), chat=False),
        "small": icl_grid(("20", "50", "80"), (0, 3, 10), 1, ("none",), chat=False),
    },
)

BAYES_CHAIN = _definition(
    "bayes-chain",
    "Changing evidence: P(heads) along 50 flips of θ = 0.75, then 50 of θ = 0.25",
    "{statement}" + ASK,
    AssistantPrefill(prefill=STEM + "{flips}"),
    {"default": _chain_grid(CHAIN_SEQUENCES, CHAIN_SWITCH), "small": _chain_grid(2, 10)},
)
