"""What an intervention is, as data: a prompt transform, a reading of the reply, request fields.

An intervention changes *how* a model is asked to randomise (a system prompt, "think step by
step", a seed it is given, an answer it must put in a tool call), never *what* it is asked: the
experiment's prompt, grid and target stay as they are, so the same experiment run with two
interventions is a head-to-head comparison. It is data so that it is recorded whole with the
run's definition (and hashed into it): a resume, or a reader years later, sees exactly what
was sent, whatever the registry says by then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Where a wrapper puts the experiment's prompt, as it was rendered for the condition.
PROMPT_SLOT = "{prompt}"
#: Where a wrapper lists the condition's answers ("0" or "1").
ANSWERS_SLOT = "{answers}"
#: Where a wrapper puts the number flipbench draws for each sample (`given-seed`). It stays in
#: the condition's messages and is filled per sample by the runner, in the last message only.
SEED_SLOT = "{seed}"

#: How the answer is read from a reply:
#: * `experiment` — the experiment's own parser on the whole reply (nothing changes);
#: * `answer-line` — the experiment's parser on what follows the reply's last `Answer:`;
#: * `verbalized` — as `answer-line`, and the stated `P(answer) = …` lines are journaled;
#: * `json` — the `answer` field of the JSON object the reply is (structured output);
#: * `tool-call` — the `answer` argument of the reply's first tool call.
Reader = Literal["experiment", "answer-line", "verbalized", "json", "tool-call"]
#: A request feature an intervention needs from the backend (`Backend.request_features`).
Feature = Literal["response_format", "tools", "reasoning"]
#: The request fields an intervention builds per condition from its answer space.
RequestShape = Literal["none", "json-schema", "tool"]

ProtocolName = Literal["single", "chained", "history", "prefill", "raw"]


class Intervention(BaseModel):
    """One way of asking the model to randomise; see docs/interventions.md for each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    summary: str  # one line, for `flipbench interventions`
    source: str  # where the prompt or idea comes from
    system_prompt: str | None = None  # put before the experiment's own system prompt, if any
    # The user prompt, rewritten: `{prompt}` (required) is the experiment's rendered prompt;
    # `{answers}` and `{seed}` may appear. None: the prompt is sent as the experiment has it.
    wrapper: str | None = None
    reader: Reader = "experiment"
    request: RequestShape = "none"
    request_fields: dict[str, Any] = {}  # sent as they are with every sampled request
    needs: Feature | None = None  # the backend must send this kind of request field
    seed: bool = False  # a fresh uniform number per sample fills `{seed}`
    # The reply is still the bare answer, so exact mode (next-token probabilities) reads what
    # sampling would, and a grammar may constrain it (--constrained).
    bare_answer: bool = False
    min_max_tokens: int | None = Field(default=None, ge=1)  # room for reasoning before the answer
    protocols: tuple[ProtocolName, ...] = ("single", "chained", "history")
    # Parsers of the experiment this can read: a finite answer space for the stated
    # probabilities, a schema enum or a tool argument.
    parsers: tuple[str, ...] = ("whole-token", "d-tokens", "number", "last-option")

    @model_validator(mode="after")
    def _consistent(self) -> Intervention:
        if self.wrapper is not None and self.wrapper.count(PROMPT_SLOT) != 1:
            raise ValueError(f"a wrapper holds {PROMPT_SLOT} exactly once")
        if self.seed and (self.wrapper is None or SEED_SLOT not in self.wrapper):
            raise ValueError(f"a seeded intervention's wrapper holds {SEED_SLOT}")
        if self.seed and self.wrapper is not None:
            after = self.wrapper.partition(PROMPT_SLOT)[2]
            if SEED_SLOT not in after:  # the runner fills the last one: it must be ours
                raise ValueError(f"{SEED_SLOT} must come after {PROMPT_SLOT}")
        if self.request != "none" and self.reader not in ("json", "tool-call"):
            raise ValueError("a schema or tool request is read as json or tool-call")
        return self

    @property
    def is_direct(self) -> bool:
        """The baseline: nothing changes, and the definition hashes as before interventions."""
        return self.name == "direct"

    def wrap(self, prompt: str, answers: Sequence[str]) -> str:
        """The user prompt as this intervention sends it (`{seed}` left for the runner)."""
        if self.wrapper is None:
            return prompt
        before, _, after = self.wrapper.partition(PROMPT_SLOT)
        listed = answer_list(answers)
        return before.replace(ANSWERS_SLOT, listed) + prompt + after.replace(ANSWERS_SLOT, listed)

    def system(self, experiment_system: str | None) -> str | None:
        """The system prompt sent: this intervention's, then the experiment's own."""
        parts = [p for p in (self.system_prompt, experiment_system) if p]
        return "\n\n".join(parts) or None

    def fields_for(self, answers: Sequence[str]) -> dict[str, Any]:
        """The extra request fields of one condition's requests."""
        fields = dict(self.request_fields)
        schema = answer_schema(answers)
        if self.request == "json-schema":
            fields["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": True, "schema": schema},
            }
        elif self.request == "tool":
            fields["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": TOOL_NAME,
                        "description": "Submit your answer.",
                        "parameters": schema,
                    },
                }
            ]
            fields["tool_choice"] = {"type": "function", "function": {"name": TOOL_NAME}}
        return fields


#: The function a `tool-call` reply must call.
TOOL_NAME = "submit_answer"


def answer_schema(answers: Sequence[str]) -> dict[str, Any]:
    """A JSON object with one field, `answer`, one of the condition's answers."""
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(answers)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


def answer_list(answers: Sequence[str]) -> str:
    """`"0" or "1"`, `"1", "2" or "3"`: the answers as a prompt names them."""
    quoted = [f'"{a}"' for a in answers]
    if len(quoted) <= 1:
        return "".join(quoted) or "the number you are asked for"
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]
