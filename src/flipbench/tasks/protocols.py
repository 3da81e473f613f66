"""How a trial talks to the model, as data: the trial protocols of an experiment.

A protocol says what one trial sends and what its answer is; it holds only data (templates
filled like the prompt, with the condition's fields) and renders it into a `Condition`:

* `single` — one user message (after the system prompt, if any); the reply is the answer.
* `chained` — the prompt, then each follow-up as a new user turn after the model's own previous
  reply (its text as the assistant message); the answer is the turns' answers joined by spaces.
* `history` — a conversation given in advance (`turns`, user and assistant messages) between
  the system prompt and the prompt; one request, its reply is the answer.
* `prefill` — the prompt (after optional `turns`), then the start of the assistant's reply
  (`prefill`, e.g. "The coin landed on"), which the model continues; the continuation is the
  answer text. The request's last message is that partial assistant message.
* `raw` — the prompt as plain text to a completions endpoint, no chat template and no system
  prompt (base models). The text is sent as filled: the backend adds the model's BOS token,
  so a template must not begin with one.

How each is sent is the runner's and the backends' business (`trials.TRIALS`,
`Backend.sample_raw`); which backend can send which is `Backend.check_protocol`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from flipbench.errors import FlipbenchError

Message = dict[str, str]
#: Fills a template's `{fields}` with one condition's values.
Fill = Callable[[str], str]
ProtocolKind = Literal["single", "chained", "history", "prefill", "raw"]

#: BOS tokens as text: a raw prompt starting with one would carry two (the backend adds one).
BOS_TEXTS = ("<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>", "<|endoftext|>")


class Turn(BaseModel):
    """One message of a conversation given in advance; `content` is a template."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Rendered:
    """What one condition sends: chat messages, or a raw text, and what follows them."""

    messages: tuple[Message, ...] = ()
    followups: tuple[str, ...] = ()
    prefill: str | None = None
    raw_prompt: str | None = None


def _chat(system: str | None, turns: Sequence[Turn], prompt: str, fill: Fill) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [{"role": t.role, "content": fill(t.content)} for t in turns]
    messages.append({"role": "user", "content": fill(prompt)})
    return messages


def _alternating(turns: tuple[Turn, ...]) -> tuple[Turn, ...]:
    """Turns before the prompt alternate user, assistant, …, ending on the assistant (the prompt
    is the next user turn): what every chat template accepts."""
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise ValueError(f"turn {i + 1} must be a {expected} message (turns alternate)")
    if turns and turns[-1].role != "assistant":
        raise ValueError("the last turn must be an assistant message: the prompt follows it")
    return turns


class SingleTurn(BaseModel):
    """One user message; its reply is the answer (every experiment's default)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["single"] = "single"

    def render(self, system: str | None, prompt: str, fill: Fill) -> Rendered:
        return Rendered(messages=tuple(_chat(system, (), prompt, fill)))


class ChainedTurns(BaseModel):
    """The prompt, then each follow-up (a template) as the next user turn, after the model's own
    reply. A failed turn fails the trial; the answer is the turns' answers joined by spaces,
    so the experiment's D is 1 + the number of follow-ups."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["chained"] = "chained"
    followups: tuple[str, ...] = Field(min_length=1)

    def render(self, system: str | None, prompt: str, fill: Fill) -> Rendered:
        messages = tuple(_chat(system, (), prompt, fill))
        return Rendered(messages=messages, followups=tuple(fill(f) for f in self.followups))


class HistoryTurns(BaseModel):
    """A conversation given in advance: `turns` (alternating user/assistant templates, ending
    on the assistant) come before the prompt; one request."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["history"] = "history"
    turns: tuple[Turn, ...] = Field(min_length=1)

    _check_turns = field_validator("turns")(_alternating)

    def render(self, system: str | None, prompt: str, fill: Fill) -> Rendered:
        return Rendered(messages=tuple(_chat(system, self.turns, prompt, fill)))


class AssistantPrefill(BaseModel):
    """The prompt (after optional `turns`), then `prefill` (a template) as the start of the
    assistant's reply; the model's continuation is the answer text. End the prefill where the
    answer's token begins ("The coin landed on", not "… on "): the answer token carries its
    leading space."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["prefill"] = "prefill"
    prefill: str = Field(min_length=1)
    turns: tuple[Turn, ...] = ()

    _check_turns = field_validator("turns")(_alternating)

    def render(self, system: str | None, prompt: str, fill: Fill) -> Rendered:
        prefill = fill(self.prefill)
        messages = [
            *_chat(system, self.turns, prompt, fill),
            {"role": "assistant", "content": prefill},
        ]
        return Rendered(messages=tuple(messages), prefill=prefill)


class RawText(BaseModel):
    """The prompt as plain text to a completions endpoint: no chat template, no system prompt
    (base models). The backend adds the model's BOS token; the text must not start with one."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["raw"] = "raw"

    def render(self, system: str | None, prompt: str, fill: Fill) -> Rendered:
        if system:
            raise FlipbenchError("a raw prompt has no system prompt (it is sent as plain text)")
        text = fill(prompt)
        if text.lstrip().startswith(BOS_TEXTS):
            raise FlipbenchError(
                "a raw prompt must not start with a BOS token: the backend adds the model's own"
            )
        return Rendered(raw_prompt=text)


TrialProtocol = Annotated[
    SingleTurn | ChainedTurns | HistoryTurns | AssistantPrefill | RawText,
    Field(discriminator="kind"),
]


def hashed_fields(protocol: TrialProtocol) -> dict[str, Any]:
    """The protocol as a definition's hash sees it.

    Before protocols existed every definition held `followup` (None, or the one follow-up of
    chained flips), and the hashes recorded with those runs must not change: those two shapes
    still hash as `followup`; any other protocol enters the hash whole, as `protocol`.
    """
    if isinstance(protocol, SingleTurn):
        return {"followup": None}
    if isinstance(protocol, ChainedTurns) and len(protocol.followups) == 1:
        return {"followup": protocol.followups[0]}
    return {"protocol": protocol.model_dump(mode="json")}


def legacy_followup(data: Any) -> Any:
    """Read `followup` (definitions journaled before protocols, and the authoring shorthand) as
    the chained protocol; used as a `mode="before"` model validator."""
    if not isinstance(data, dict) or data.get("followup") is None:
        return data
    chained = ChainedTurns(followups=(data["followup"],))
    protocol = data.get("protocol")
    if isinstance(protocol, dict):
        protocol = TypeAdapter(TrialProtocol).validate_python(protocol)
    if protocol is not None and protocol not in (SingleTurn(), chained):
        raise ValueError("followup is the chained protocol: give either followup or protocol")
    return {**data, "protocol": chained}
