"""Interventions that give the model a source of randomness: its own string, or flipbench's number.

A model that cannot sample may still compute: `string-seed` asks it to write a random string
first and derive its answer from that string (String Seed of Thought); `given-seed` hands it a
fresh uniform number per sample, drawn by flipbench and recorded with the sample, and asks it to
turn that number into its answer. If a model follows the requested distribution with a given
number but not without, its failure is in sampling, not in knowing the distribution.
"""

from __future__ import annotations

from flipbench.interventions.model import Intervention
from flipbench.interventions.prompting import ANSWER_LINE, LIFT_LENGTH

STRING_SEED = Intervention(
    name="string-seed",
    summary="write a random string first, then derive the answer from it (answer on a last line)",
    source=(
        "Misaki & Akiba 2025, String Seed of Thought: Prompting LLMs for Distribution-Faithful"
        " and Diverse Generation (arXiv 2510.21150)"
    ),
    wrapper=(
        "{prompt}\n\n" + LIFT_LENGTH + " First, write a random string of at least 20 characters."
        " Then manipulate that string (for example, turn it into a number between 0 and 1) and"
        " use the result to choose your answer so that each answer has exactly the probability"
        " asked for. Show these steps. " + ANSWER_LINE
    ),
    reader="answer-line",
    min_max_tokens=1024,
)

GIVEN_SEED = Intervention(
    name="given-seed",
    summary="flipbench draws a uniform number in [0, 1) per sample (recorded) and asks the model"
    " to use it",
    source=(
        "issue 16: frontier models turn provided randomness into the requested distribution but"
        " cannot sample directly; the number is flipbench's own (SHA-256 of run, condition and"
        " sample index)"
    ),
    wrapper=(
        "{prompt}\n\nUse this random number, drawn uniformly from [0, 1) for this answer only,"
        " as your source of randomness: {seed}"
    ),
    seed=True,
)

INTERVENTIONS = (STRING_SEED, GIVEN_SEED)
