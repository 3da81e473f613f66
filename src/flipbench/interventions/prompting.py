"""Interventions that only change the words: the baseline, a system prompt, step-by-step reasoning.

`direct` is the experiment as defined (every other intervention is read against it);
`system-persona` tests the claim that a system prompt alone moves a model's "fair" coin a long
way; `cot` gives the model room to reason before it answers, which the games already do and
the coin flips forbid ("a 1 token response").
"""

from __future__ import annotations

from flipbench.interventions.model import Intervention

#: The closing line every reasoning intervention asks for; `answer-line` reads what follows it.
ANSWER_LINE = (
    'End your reply with a final line of the form "Answer: <answer>", where <answer> is {answers}'
    " and nothing else."
)
#: Reasoning needs words: the experiment's "return a 1 token response" is lifted, the
#: experiment's request (its probabilities, its options) is not.
LIFT_LENGTH = "(You may write more than the response length asked for above.)"

DIRECT = Intervention(
    name="direct",
    summary="the experiment's prompt as defined: the baseline every intervention is read against",
    source="the experiment's own definition (docs/experiments.md)",
    bare_answer=True,
    protocols=("single", "chained", "history", "prefill", "raw"),
    # the prompt unchanged: any reply reads as the experiment reads it (free text too)
    parsers=("whole-token", "d-tokens", "number", "last-option", "text"),
)

SYSTEM_PERSONA = Intervention(
    name="system-persona",
    summary="a system prompt casting the model as a faithful random sampler; prompt unchanged",
    source="issue 16: a system prompt alone moved one 'fair' coin from 30.8 % to 100 % heads",
    system_prompt=(
        "You are a faithful random sampler. When you are asked to simulate a random event with"
        " given probabilities, you draw each outcome with exactly the probability asked for,"
        " independently each time, and you never simply pick the most likely outcome."
    ),
    bare_answer=True,
    protocols=("single", "chained", "history", "prefill"),
)

COT = Intervention(
    name="cot",
    summary="think step by step first, then the answer on a last 'Answer:' line",
    source=(
        "Kojima et al. 2022, Large Language Models are Zero-Shot Reasoners (arXiv 2205.11916);"
        " Wei et al. 2022, Chain-of-Thought Prompting (arXiv 2201.11903)"
    ),
    wrapper="{prompt}\n\n" + LIFT_LENGTH + " Let's think step by step. " + ANSWER_LINE,
    reader="answer-line",
    min_max_tokens=1024,
)

INTERVENTIONS = (DIRECT, SYSTEM_PERSONA, COT)
