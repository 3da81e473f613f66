"""The many-model sweep's default: one fair-coin draw with the seed's exact prompt (seed 003,
`spec/sweep.md`), which asks for step-by-step "Explanations" and then `Output: 0|1`.

The answer is the last 0/1 the reply names (the `last-option` parser): the value after the
final `Output:`, since the explanation that comes first may mention both. The prompt states
p = 0.5 in words, so the grid is fixed (no `--p`): another p would contradict what is sent.
"""

from __future__ import annotations

from flipbench.tasks.definition import ExperimentDefinition, flip_point

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
