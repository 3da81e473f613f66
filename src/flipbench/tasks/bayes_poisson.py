"""Poisson insertion (the Bayesian battery's experiment 5): a generative, sampled experiment.

The model writes text with a special character inserted between words, k ~ Poisson(λ) copies
after each word, and the rate it produced is read back from the text (`kinds.bayes_poisson`):
standalone occurrences of the character per gap between words. Two variants, as in the
Berkeley release's `std_exp` and `icl`:

* `bayes-poisson` (**explicit**): the user asks for a short story with the character inserted
  at rate λ ∈ {0.1, 0.3, 0.5, 0.7, 0.9} (chat framing, one reply is one story);
* `bayes-poisson-icl` (**in context**): raw text, a story prefix of about 60 words (the
  public-domain filler of the needle experiments, `data/filler`) already holding the character
  at rate λ, drawn from a recorded seed; the model continues it. `bayes-poisson-icl-chat` puts
  the same prefix in the assistant's prefilled reply after a request to continue the story.

Why these characters: the rate is estimated from occurrences of a character that does not
occur naturally, so neither the filler nor the instructions may hold it apart from the
insertions. `§` is the default; the `chars` grids use `¤ † ‡ ¶` at λ = 0.5 to show whether the
rate depends on the symbol. A test checks that none occurs in the filler.

Why the prefix is data: its insertions are drawn when the module is imported, from
`random.Random` seeded with the string `flipbench-poisson:{seed}:{λ}:{char}:{index}` (SHA-512,
the same on every platform), so the prefix text enters the definition hash and the seed
travels in `params`. A prefix ends right after a word, so the continuation's first gap is
whole: the model chooses between a word and an insertion there.
"""

from __future__ import annotations

import math
import random

from flipbench.tasks.bayes_needles import filler_sentence_ends, filler_words
from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition
from flipbench.tasks.protocols import AssistantPrefill, RawText

#: The recorded seed of every prefix (a changed seed is a different definition hash).
SEED = 2026
RATES = ("0.1", "0.3", "0.5", "0.7", "0.9")
CHAR = "§"
#: Symbols for the `chars` grids: none occurs in the filler or the prompts (tested).
CHARS = ("§", "¤", "†", "‡", "¶")
#: Words of filler in an in-context prefix, and its sequences per rate.
PREFIX_WORDS = 60
SEQUENCES = 4

EXPLICIT_PROMPT = (
    "Write a short story of about 100 words. After every word, insert the character {char} "
    "k times, where k is drawn at random from a Poisson distribution with mean {lam}, so that "
    "on average there are {lam} copies of {char} after each word. Separate every {char} from "
    "the words by spaces and write nothing but the story."
)
ICL_ASK = (
    "Please continue this story in the same style, inserting the character {char} between "
    "words at random, as often as it appears so far."
)


def poisson_draw(rng: random.Random, lam: float) -> int:
    """One Poisson(λ) count by Knuth's product of uniforms (exact; λ here is below 1)."""
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def story_prefix(lam: str, char: str, index: int, *, seed: int = SEED) -> tuple[str, int, int]:
    """`PREFIX_WORDS` words of filler from a seeded sentence start with Poisson(λ) copies of
    `char` after every word but the last; the text, its insertions and its gaps."""
    rng = random.Random(f"flipbench-poisson:{seed}:{lam}:{char}:{index}")
    words = filler_words()
    starts = [e for e in filler_sentence_ends() if e + PREFIX_WORDS <= len(words)]
    start = rng.choice(starts)  # a sentence's first word
    chosen = words[start : start + PREFIX_WORDS]
    parts, inserted = [], 0
    for word in chosen[:-1]:
        parts.append(word)
        k = poisson_draw(rng, float(lam))
        inserted += k
        if k:
            parts.append(char * k)
    parts.append(chosen[-1])
    return " ".join(parts), inserted, len(chosen) - 1


def _key(lam: str, char: str, index: int | None) -> str:
    key = f"lambda={lam}" + ("" if char == CHAR else f",char={char}")
    return key if index is None else f"{key},s={index}"


def explicit_point(lam: str, char: str = CHAR) -> ConditionSpec:
    key = _key(lam, char, None)
    fields = {"lam": lam, "char": char, "leading_gap": "no"}
    return ConditionSpec(key=key, value=key.removeprefix("lambda="), x=float(lam), fields=fields,
                         group=f"lambda={lam}")  # fmt: skip


def icl_point(lam: str, index: int, char: str = CHAR) -> ConditionSpec:
    """Sequence `index` at rate λ: the prefix as the prompt field, its own rate recorded."""
    text, inserted, gaps = story_prefix(lam, char, index)
    key = _key(lam, char, index)
    fields = {
        "lam": lam, "char": char, "story": text, "sequence": str(index),
        "prefix_insertions": str(inserted), "prefix_gaps": str(gaps), "leading_gap": "yes",
    }  # fmt: skip
    return ConditionSpec(key=key, value=key.removeprefix("lambda="), x=float(lam), fields=fields,
                         group=f"lambda={lam}")  # fmt: skip


def _icl_grids(sequences: int) -> dict[str, tuple[ConditionSpec, ...]]:
    return {
        "default": tuple(icl_point(r, i) for r in RATES for i in range(1, sequences + 1)),
        "chars": tuple(icl_point("0.5", i, c) for c in CHARS for i in range(1, sequences + 1)),
        "small": tuple(icl_point(r, 1) for r in ("0.1", "0.9")),
    }


POISSON = ExperimentDefinition(
    name="bayes-poisson",
    title="A story with a character inserted between words at Poisson rate λ (explicit)",
    version="1",
    kind="bayes-poisson",
    prompt=EXPLICIT_PROMPT,
    grids={
        "default": tuple(explicit_point(r) for r in RATES),
        "chars": tuple(explicit_point("0.5", c) for c in CHARS),
        "small": tuple(explicit_point(r) for r in ("0.1", "0.9")),
    },
    n=20,
    answers=(),
    first="",
    parser="text",
    exact=False,
    max_tokens=200,
)

POISSON_ICL = ExperimentDefinition(
    name="bayes-poisson-icl",
    title="Continue a story holding a character at Poisson rate λ between words (raw text)",
    version="1",
    kind="bayes-poisson",
    prompt="{story}",
    protocol=RawText(),
    grids=_icl_grids(SEQUENCES),
    params={"seed": str(SEED)},
    n=5,
    answers=(),
    first="",
    parser="text",
    exact=False,
    max_tokens=120,
)

POISSON_ICL_CHAT = ExperimentDefinition(
    name="bayes-poisson-icl-chat",
    title="Continue a story holding a character at Poisson rate λ (chat, assistant prefill)",
    version="1",
    kind="bayes-poisson",
    prompt=ICL_ASK,
    protocol=AssistantPrefill(prefill="{story}"),
    grids=_icl_grids(SEQUENCES),
    params={"seed": str(SEED)},
    n=5,
    answers=(),
    first="",
    parser="text",
    exact=False,
    max_tokens=120,
)
