"""The many-model sweep's default: one fair-coin draw with the seed's exact prompt (seed 003,
`spec/sweep.md`), which asks for step-by-step "Explanations" and then `Output: 0|1`.

The answer is the last 0/1 the reply names (the `last-option` parser): the value after the
final `Output:`, since the explanation that comes first may mention both. The prompt states
p = 0.5 in words, so the grid is fixed (no `--p`): another p would contradict what is sent.

`fair-coin-labels` fixes the two weaknesses the seed names: the labels 0/1 carry priors of
their own, and the order they are listed in is a second bias. It asks the same prompt with six
pairs of random nonsense words as the labels, each pair in both orders (12 conditions): the
word-pair analysis then separates position bias (the listed-first word's share) from a
preference for one label, and a sweep's mean is the listed-first share over both orders.
"""

from __future__ import annotations

import random

from flipbench.tasks.definition import ExperimentDefinition, flip_point
from flipbench.tasks.words import word_condition

SEED_PROMPT = (
    "** Descriptions: ** Your task is to generate a sample consisting of a single draw from the"
    " set {{0, 1}},\nwhere both 0 and 1 have a probability of 0.5. Please give your output"
    " strictly in the following format:\n\n<format>\nExplanations: [Your step-by-step analyses"
    " and results;\nYou DO NOT have access to a computer or a random number generator]\n"
    "Output: [Your output MUST be an integer in {{0, 1}}]\n</format>\n\nPlease ONLY reply"
    " according to this format, don't give me any other words.\nWrite the output EXACTLY like"
    ' "Output: 0" or "Output: 1". Make sure to include the "Output: " prefix.'
)

FAIR_COIN = ExperimentDefinition(
    name="fair-coin",
    title="One fair-coin draw, the many-model sweep's prompt",
    version="1",
    prompt=SEED_PROMPT,
    grids={"default": (flip_point("50"),)},
    n=50,
    answers=("0", "1"),
    first="1",
    parser="last-option",
    exact=False,  # the answer follows an explanation: no first token to read
    temperature=1.0,
    max_tokens=512,
)


def _pseudo_words(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` pairs of distinct pronounceable nonsense words (consonant–vowel syllables):
    labels that carry no prior of their own, unlike 0/1 (seed 003 names this weakness)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < 2 * count:
        word = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return [(words[2 * i], words[2 * i + 1]) for i in range(count)]


#: The random labels, drawn once from a fixed seed so that every run (and its hash) agrees.
LABEL_SEED = 3
LABEL_PAIRS = tuple(_pseudo_words(6, LABEL_SEED))

FAIR_COIN_LABELS = ExperimentDefinition(
    name="fair-coin-labels",
    title="The sweep's fair coin with random labels in both orders",
    version="1",
    kind="word-pair",
    prompt=SEED_PROMPT.replace("{{0, 1}}", "{{{w1}, {w2}}}")
    .replace("both 0 and 1", "both {w1} and {w2}")
    .replace("MUST be an integer in", "MUST be one of")
    .replace('"Output: 0" or "Output: 1"', '"Output: {w1}" or "Output: {w2}"'),
    grids={
        "default": tuple(
            word_condition(a, b, order) for a, b in LABEL_PAIRS for order in ("forward", "reverse")
        )
    },
    n=5,  # 12 conditions × 5 = 60 draws a model, about the seed's 50
    answers=(),
    first="",
    parser="last-option",
    exact=False,
    temperature=1.0,
    max_tokens=512,
)
