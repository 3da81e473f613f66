"""Interventions that make the model state its distribution: verbalized and rejection sampling.

`verbalized` asks for the probability of each answer before the answer itself; the stated
distribution is parsed and journaled with the sample (`meta["stated"]`), so the gap between
what a model says the distribution is and what it samples can be measured on the same replies.
`rejection` walks the model through rejection sampling in words, in one reply.
"""

from __future__ import annotations

from flipbench.interventions.model import Intervention
from flipbench.interventions.prompting import ANSWER_LINE, LIFT_LENGTH

#: Only a finite answer space has a probability per answer.
FINITE = ("whole-token", "last-option")

VERBALIZED = Intervention(
    name="verbalized",
    summary="state P(answer) for every answer, then sample one (stated distribution journaled)",
    source=(
        "Zhang et al. 2025, Verbalized Sampling: How to Mitigate Mode Collapse and Unlock LLM"
        " Diversity (arXiv 2510.01171)"
    ),
    wrapper=(
        "{prompt}\n\n" + LIFT_LENGTH + " First state the probability of each possible answer"
        ' ({answers}), one per line, as "P(<answer>) = <probability between 0 and 1>". Then'
        " draw your answer from exactly that distribution. " + ANSWER_LINE
    ),
    reader="verbalized",
    min_max_tokens=512,
    parsers=FINITE,
)

REJECTION = Intervention(
    name="rejection",
    summary="verbalized rejection sampling: propose uniformly, accept with the target ratio,"
    " repeat",
    source=(
        "Xiao et al. 2025, Flipping Against All Odds: Reducing LLM Coin Flip Bias via Verbalized"
        " Rejection Sampling (arXiv 2506.09998); here in one reply"
    ),
    wrapper=(
        "{prompt}\n\n" + LIFT_LENGTH + " Use rejection sampling, in words: (1) propose a"
        " candidate answer, each of {answers} equally likely; (2) accept it with probability"
        " equal to its requested probability divided by the largest requested probability, else"
        " reject it; (3) repeat until you accept a candidate. Write down each proposal and"
        " decision. " + ANSWER_LINE
    ),
    reader="answer-line",
    min_max_tokens=1024,
    parsers=FINITE,
)

INTERVENTIONS = (VERBALIZED, REJECTION)
