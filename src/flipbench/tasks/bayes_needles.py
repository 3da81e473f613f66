"""The Bayesian battery's verbal bias, "needles" (bayesian.md, Exp 2), and where they sit.

A sentence before the prior's stem states the bias ("When I flip coins they land on heads 30%
of the time."); the model's P(heads) should follow it, target (b, 1 − b). As data:

* `bayes-needle-coin` / `-chat`: b ∈ {0, 10, …, 100}; the chat framing states the bias in the
  user turn ("When you flip coins, …") and prefills the stem;
* `bayes-needle-die` / `-chat`: face 6 at b (`default`), or every face at b ∈ {0, 50, 100}
  (`faces`), the other faces sharing 1 − b equally;
* `bayes-needle-number` / `-chat`: no statement, "always even", "always odd"; the target is
  uniform over the stated parity (x is the requested P(even));
* `bayes-needle-depth`: the coin needle (b = 80 %) at depth 0, ¼, ½, ¾ or 1 of a filler of
  about 0, 250, 500 or 1,000 words (the public-domain opening of *Alice's Adventures in
  Wonderland*, `flipbench/data/filler`), then the stem: does the statement still count when
  it is buried? Depth and length snap to sentence ends so the needle never splits a sentence;
  at length 0 depth means nothing and the grid holds one condition, whose prompt is the coin
  needle's at the same b. 1,000 words are ~1,300 SmolLM2 tokens: `local/` serves 2,048 tokens
  per slot, so the `long` grid (adding 2,000 words, ~2,500 tokens) is for `hf/` models.
  `two-b` adds b = 20 %: the difference between the two b at one cell is the needle's own
  effect, apart from what the filler does to P(heads).
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from importlib import resources

from flipbench.tasks.bayes_priors import (
    COIN,
    COIN_ASK,
    COIN_STEM,
    DIE,
    DIE_ASK,
    DIE_STEM,
    NUMBER_ASK,
    NUMBER_STEM,
    NUMBERS,
)
from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition, format_percent
from flipbench.tasks.protocols import AssistantPrefill, RawText

COIN_NEEDLE = "When I flip coins they land on heads {b}% of the time."
COIN_NEEDLE_CHAT = "When you flip coins, they land on heads {b}% of the time."
DIE_NEEDLE = "When I roll dice they land on {face} {b}% of the time."
DIE_NEEDLE_CHAT = "When you roll dice, they land on {face} {b}% of the time."
PARITY = {"even": "When I pick random numbers, they are always even.",
          "odd": "When I pick random numbers, they are always odd."}  # fmt: skip
PARITY_CHAT = {"even": "When you pick random numbers, they are always even.",
               "odd": "When you pick random numbers, they are always odd."}  # fmt: skip

BIASES = tuple(str(b) for b in range(0, 101, 10))
DEPTHS = ("0", "0.25", "0.5", "0.75", "1")
LENGTHS = (0, 250, 500, 1000)
DEPTH_BIAS = "80"


def coin_point(b: str) -> ConditionSpec:
    share = float(Decimal(b)) / 100
    v = format_percent(Decimal(b))
    return ConditionSpec(
        key=f"b={v}", value=v, x=share, fields={"b": v},
        target={"heads": share, "tails": 1 - share},
    )  # fmt: skip


def die_point(face: str, b: str, keyed_by_face: bool) -> ConditionSpec:
    """`face` at b %, the other five faces at (100 − b) / 5 % each."""
    share = float(Decimal(b)) / 100
    v = format_percent(Decimal(b))
    target = {f: (1 - share) / 5 for f in DIE} | {face: share}
    key = f"face={face} b={v}" if keyed_by_face else f"b={v}"
    return ConditionSpec(key=key, value=key.removeprefix("b="), x=share,
                         fields={"face": face, "b": v}, first=face, target=target)  # fmt: skip


def parity_point(parity: str, statements: dict[str, str]) -> ConditionSpec:
    """No statement (uniform over 1–10) or "always even/odd" (uniform over that parity)."""
    if parity == "none":
        target = {n: 0.1 for n in NUMBERS}
        return ConditionSpec(key="none", value="none", x=0.5, fields={"statement": ""},
                             target=target)  # fmt: skip
    keep = 0 if parity == "even" else 1
    target = {n: (0.2 if int(n) % 2 == keep else 0.0) for n in NUMBERS}
    return ConditionSpec(
        key=parity, value=parity, x=1.0 if parity == "even" else 0.0,
        fields={"statement": statements[parity] + " "}, target=target,
    )  # fmt: skip


def _needle(
    name: str, title: str, prompt: str, grids: dict[str, tuple[ConditionSpec, ...]],
    answers: tuple[str, ...], stem: str, ask: str | None,
) -> ExperimentDefinition:  # fmt: skip
    """Base framing: `prompt` then the stem, as raw text. Chat framing: `prompt` is the user
    turn (statement, then `ask`) and the stem the assistant's prefill."""
    if ask is None:
        protocol: RawText | AssistantPrefill = RawText()
        template = prompt + "{stem}"
    else:
        protocol, template = AssistantPrefill(prefill="{stem}"), prompt + ask
    return ExperimentDefinition(
        name=name, title=title, version="1", kind="bayes-bias", prompt=template,
        protocol=protocol, grids=grids, params={"stem": stem}, n=100, answers=answers,
        first=answers[0], max_tokens=4,
    )  # fmt: skip


_COIN_GRIDS = {"default": tuple(coin_point(b) for b in BIASES)}
_DIE_GRIDS = {
    "default": tuple(die_point("6", b, False) for b in BIASES),
    "faces": tuple(die_point(f, b, True) for f in DIE for b in ("0", "50", "100")),
}


def _parity_grid(statements: dict[str, str]) -> dict[str, tuple[ConditionSpec, ...]]:
    return {"default": tuple(parity_point(p, statements) for p in ("none", "even", "odd"))}


NEEDLE_COIN = _needle(
    "bayes-needle-coin", "Coin prior after a stated bias of b % heads (base framing)",
    COIN_NEEDLE + " ", _COIN_GRIDS, COIN, COIN_STEM, None,
)  # fmt: skip
NEEDLE_COIN_CHAT = _needle(
    "bayes-needle-coin-chat", "Coin prior after a stated bias of b % heads (chat framing)",
    COIN_NEEDLE_CHAT + " ", _COIN_GRIDS, COIN, COIN_STEM, COIN_ASK,
)  # fmt: skip
NEEDLE_DIE = _needle(
    "bayes-needle-die", "Die prior after a stated bias of b % on one face (base framing)",
    DIE_NEEDLE + " ", _DIE_GRIDS, DIE, DIE_STEM, None,
)  # fmt: skip
NEEDLE_DIE_CHAT = _needle(
    "bayes-needle-die-chat", "Die prior after a stated bias of b % on one face (chat framing)",
    DIE_NEEDLE_CHAT + " ", _DIE_GRIDS, DIE, DIE_STEM, DIE_ASK,
)  # fmt: skip
NEEDLE_NUMBER = _needle(
    "bayes-needle-number", "Number 1-10 after 'always even/odd' (base framing)",
    "{statement}", _parity_grid(PARITY), NUMBERS, NUMBER_STEM, None,
)  # fmt: skip
NEEDLE_NUMBER_CHAT = _needle(
    "bayes-needle-number-chat", "Number 1-10 after 'always even/odd' (chat framing)",
    "{statement}", _parity_grid(PARITY_CHAT), NUMBERS, NUMBER_STEM, NUMBER_ASK,
)  # fmt: skip


# -- needle position × context length --------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?][\"')\u201d\u2019]*$")


@cache
def filler_words() -> tuple[str, ...]:
    """The filler as words (whitespace collapsed: the prompt is one paragraph)."""
    text = resources.files("flipbench").joinpath("data/filler/alice.txt").read_text("utf-8")
    return tuple(text.split())


def sentence_ends(words: tuple[str, ...]) -> list[int]:
    """Word counts after which a sentence ends (0 and the end included)."""
    ends = [i + 1 for i, w in enumerate(words) if _SENTENCE_END.search(w)]
    return sorted({0, *ends, len(words)})


@cache
def filler_sentence_ends() -> tuple[int, ...]:
    """`sentence_ends` of the filler, once: every grid point's haystack is cut at them, and
    scanning the text for each of ~150 points at import cost ~60 ms of every CLI start."""
    return tuple(sentence_ends(filler_words()))


def haystack(length: int, depth: float, needle: str) -> str:
    """About `length` words of filler (the first sentence end at or after it) with `needle`
    at the sentence end nearest `depth` of the way through (ties: the earlier)."""
    words = filler_words()
    ends = filler_sentence_ends()
    stop = next((e for e in ends if e >= length), len(words)) if length else 0
    inside = [e for e in ends if e <= stop]
    cut = min(inside, key=lambda e: (abs(e - depth * stop), e))
    parts = [" ".join(words[:cut]), needle, " ".join(words[cut:stop])]
    return " ".join(p for p in parts if p)


def depth_point(length: int, depth: str, b: str) -> ConditionSpec:
    share = float(Decimal(b)) / 100
    v = format_percent(Decimal(b))
    key = f"L={length} d={depth}" + ("" if b == DEPTH_BIAS else f" b={v}")
    context = haystack(length, float(depth), COIN_NEEDLE.format(b=v))
    return ConditionSpec(
        key=key, value=key, x=share, fields={"context": context},
        target={"heads": share, "tails": 1 - share},
    )  # fmt: skip


def depth_grid(
    lengths: tuple[int, ...], depths: tuple[str, ...], biases: tuple[str, ...]
) -> tuple[ConditionSpec, ...]:
    """Every length × depth (length 0: one condition) × b."""
    return tuple(
        depth_point(n, d, b) for b in biases for n in lengths for d in (depths if n else depths[:1])
    )


NEEDLE_DEPTH = ExperimentDefinition(
    name="bayes-needle-depth",
    title="Coin needle (b = 80 %) at depth d of a filler of L words (base framing)",
    version="1",
    kind="bayes-bias",
    prompt="{context} {stem}",
    protocol=RawText(),
    grids={
        "default": depth_grid(LENGTHS, DEPTHS, (DEPTH_BIAS,)),
        "two-b": depth_grid(LENGTHS, DEPTHS, ("20", DEPTH_BIAS)),
        "small": depth_grid((0, 250), ("0", "1"), (DEPTH_BIAS,)),
        "long": depth_grid((*LENGTHS, 2000), DEPTHS, (DEPTH_BIAS,)),
    },
    params={"stem": COIN_STEM},
    n=100,
    answers=COIN,
    first="heads",
    max_tokens=4,
)
