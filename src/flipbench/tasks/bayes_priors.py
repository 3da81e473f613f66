"""The Bayesian battery's priors (bayesian.md, Exp 1): what a model says before any evidence.

*Enough Coin Flips Can Make LLMs Act Bayesian* reads P(choice | prompt) after a bare stem
("I tossed a coin and it landed on") and finds the models' priors biased towards heads. Each
prior is one experiment per framing, as data:

* a **base framing** (`RawText`): the stem is the whole prompt, for base models;
* a **chat framing** (`AssistantPrefill`): the user asks for the toss, roll or pick, and the
  assistant's reply is prefilled with the same stem, so the sequence ends where the answer
  starts.

The target is uniform. The coin ships `PARAPHRASES`, 22 stems (the paper's first) in the
`paraphrases` grid: one stem's P(heads) says little, the spread over stems is what the paper
reports, and the `bayes-bias` kind prints its mean ± sd.

The paper's stems end in a space (`"… landed on "`) with choices `" heads"`; here the stems end
on the last word and the answers are the bare words: a tokenizer writes the space into the
answer's token, and exact mode reads every surface form of an answer (`heads`, ` heads`,
`Heads`, …; `providers.whole_answer`), so `1` never collects `10` (the stop rule: the token after
a whole answer cannot start with a word character).
"""

from __future__ import annotations

from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition
from flipbench.tasks.protocols import AssistantPrefill, RawText

COIN = ("heads", "tails")
DIE = ("1", "2", "3", "4", "5", "6")
NUMBERS = tuple(str(i) for i in range(1, 11))

COIN_STEM = "I tossed a coin and it landed on"
DIE_STEM = "I rolled a die and it landed on"
NUMBER_STEM = "I picked a random number between 1 and 10 and it was"

COIN_ASK = "Please toss a coin and tell me whether it landed on heads or tails."
DIE_ASK = "Please roll a six-sided die and tell me what number it landed on."
NUMBER_ASK = "Please pick a random number between 1 and 10."

#: Coin stems, each ending where the answer word starts: the paper's, then paraphrases.
PARAPHRASES = (
    COIN_STEM,
    "The result of my coin flip is",
    "After tossing the coin, it landed on",
    "I flipped a coin and it came up",
    "The coin landed on",
    "I flipped a coin. The result was",
    "We tossed a coin to decide, and it came up",
    "She flipped a coin and it landed on",
    "He tossed a quarter into the air and it landed on",
    "The coin spun in the air and landed on",
    "I just flipped a fair coin and got",
    "The outcome of the coin toss was",
    "After flipping the coin, I saw that it was",
    "The referee tossed the coin, and it came up",
    "My coin flip came up",
    "I flipped a penny and it landed on",
    "The coin toss resulted in",
    "When I tossed the coin, it showed",
    "Tossing a coin, I got",
    "The coin fell to the floor and landed on",
    "I threw a coin up in the air and it came down on",
    "Flipping a coin gave me",
)


def uniform(answers: tuple[str, ...]) -> dict[str, float]:
    return {a: 1 / len(answers) for a in answers}


def stem_point(index: int, stem: str, answers: tuple[str, ...], group: str) -> ConditionSpec:
    """One stem as a condition: key `stem=NN`, the stem as its prompt field, target uniform;
    `group` names the set its spread is taken over."""
    share = 1 / len(answers)
    return ConditionSpec(
        key=f"stem={index:02d}", value=f"{index:02d}", x=share, fields={"stem": stem},
        target=uniform(answers), group=group,
    )  # fmt: skip


def _prior(
    name: str, title: str, answers: tuple[str, ...], stems: tuple[str, ...], ask: str | None
) -> ExperimentDefinition:
    """The base framing (`ask` None: the stem is the raw prompt) or the chat framing (the user
    turn `ask`, the stem as the assistant's prefill); the stems' group is the prior's name
    without `bayes-prior-` and `-chat` (`coin`)."""
    group = name.removeprefix("bayes-prior-").removesuffix("-chat")
    grids: dict[str, tuple[ConditionSpec, ...]] = {
        "default": (stem_point(1, stems[0], answers, group),)
    }
    if len(stems) > 1:
        grids["paraphrases"] = tuple(
            stem_point(i, s, answers, group) for i, s in enumerate(stems, 1)
        )
    protocol = RawText() if ask is None else AssistantPrefill(prefill="{stem}")
    return ExperimentDefinition(
        name=name, title=title, version="1", kind="bayes-bias",
        prompt="{stem}" if ask is None else ask, protocol=protocol, grids=grids, n=100,
        answers=answers, first=answers[0], max_tokens=4,
    )  # fmt: skip


PRIOR_COIN = _prior("bayes-prior-coin", "Coin prior (base framing)", COIN, PARAPHRASES, None)
PRIOR_COIN_CHAT = _prior(
    "bayes-prior-coin-chat", "Coin prior (chat framing, prefilled stem)", COIN, PARAPHRASES,
    COIN_ASK,
)  # fmt: skip
PRIOR_DIE = _prior("bayes-prior-die", "Die prior (base framing)", DIE, (DIE_STEM,), None)
PRIOR_DIE_CHAT = _prior(
    "bayes-prior-die-chat", "Die prior (chat framing, prefilled stem)", DIE, (DIE_STEM,), DIE_ASK
)
PRIOR_NUMBER = _prior(
    "bayes-prior-number", "Random number 1-10 prior (base framing)", NUMBERS, (NUMBER_STEM,),
    None,
)  # fmt: skip
PRIOR_NUMBER_CHAT = _prior(
    "bayes-prior-number-chat", "Random number 1-10 prior (chat framing, prefilled stem)",
    NUMBERS, (NUMBER_STEM,), NUMBER_ASK,
)  # fmt: skip
