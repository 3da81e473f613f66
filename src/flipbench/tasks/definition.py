"""The declarative shape of an experiment and its resolution into concrete conditions.

An experiment is data (prompt, trial protocol, grids, N, answer space, parser, sampling
defaults); a run resolves it with the user's overrides into a `ResolvedExperiment`, whose hash
is recorded with every result so that two runs are comparable only when their definitions
match. The protocols (one turn, chained turns, a history, an assistant prefill, raw text) are
in `tasks.protocols`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from string import Formatter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from flipbench.config import MAX_D, MAX_N, MAX_TEMPERATURE, MAX_TOKENS
from flipbench.errors import FlipbenchError
from flipbench.interventions.model import Intervention
from flipbench.tasks.protocols import (
    ChainedTurns,
    Message,
    Rendered,
    SingleTurn,
    TrialProtocol,
    hashed_fields,
    legacy_followup,
)


def render_template(template: str, fields: Mapping[str, str]) -> str:
    """Fill a prompt template's `{name}` fields, and nothing more.

    Only bare names of the experiment's fields are allowed (`{{`/`}}` print a brace): no
    attribute or index access (`{p.__class__}`), no positional `{}`, no conversion (`!r`) and
    no format spec (`{p:>999999999}`), so a template (a user's, or one read back from a
    journal) can neither reach into Python objects nor blow up in size.
    """
    names = ", ".join("{" + f + "}" for f in sorted(fields))
    hint = f"use only {names}" if names else "this prompt takes no fields ({{ and }} print braces)"
    parts = []
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise FlipbenchError(f"prompt template is invalid ({exc}); {hint}") from None
    for literal, name, spec, conversion in parsed:
        parts.append(literal)
        if name is None:
            continue
        if name not in fields or spec or conversion:
            extra = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            shown = f"{{{name}{extra}}}"
            shown = shown if len(shown) <= 60 else shown[:59] + "…"
            raise FlipbenchError(f"prompt template field {shown} is not allowed; {hint}")
        parts.append(fields[name])
    return "".join(parts)


def format_percent(value: Decimal) -> str:
    """Print a percentage the way the prompts need it: `45`, `49.5`, `49.999999`, never `45.0`."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def parse_percent(text: str | float | int) -> Decimal:
    """Parse a percentage exactly (as a decimal, so that 100 − 49.999999 prints as 50.000001)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise FlipbenchError(f"p value {text!r} is not a number") from None
    if not value.is_finite():
        raise FlipbenchError(f"p value {text!r} is not a finite number")
    if value < 0 or value > 100:
        raise FlipbenchError(f"p value {format_percent(value)} is outside [0, 100] (percent)")
    return value


#: The name of a registered experiment kind (`flipbench.kinds`): it picks the analysis,
#: figures and table columns. Checked against the registry when a run starts.
Kind = str
Parser = Literal["whole-token", "d-tokens", "number", "last-option", "text"]


class ConditionSpec(BaseModel):
    """One grid point as data: its prompt fields, coordinate and requested distribution."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: str  # the grid value as printed (p or q in percent, a word pair, a payoff)
    x: float  # where it sits on a response curve: p, q, or the optimal P(first option)
    fields: dict[str, str]
    answers: tuple[str, ...] | None = None  # this condition's own answer space (word pairs)
    first: str | None = None  # the answer whose rate is r (default: the experiment's)
    target: dict[str, float] | None = None  # the requested distribution over the answers
    group: str | None = None  # e.g. the word pair, shared by its two orders


class Condition(BaseModel):
    """A resolved grid point: exactly what is sent and how its answers are read.

    `messages` are the chat messages of the first request, as sent (a prefill's ends with the
    partial assistant message, whose text is also `prefill`); `followups` the user turns of a
    chained trial after each reply; `raw_prompt` the plain text of a raw trial (no messages).
    """

    model_config = ConfigDict(frozen=True)

    key: str
    value: str
    x: float
    messages: tuple[Message, ...]
    followups: tuple[str, ...] = ()
    prefill: str | None = None
    raw_prompt: str | None = None
    answers: tuple[str, ...]
    first: str
    target: dict[str, float] | None = None
    group: str | None = None
    # The intervention's fields of every sampled request (structured output, a tool, effort).
    request_fields: dict[str, Any] = {}
    # The last message holds the intervention's `{seed}`, filled per sample by the runner.
    seeded: bool = False

    @property
    def p(self) -> float:
        return self.x

    @property
    def p_percent(self) -> str:
        return self.value


def flip_point(text: str) -> ConditionSpec:
    """A coin that returns "1" p % of the time (p in percent, exact decimal)."""
    p = parse_percent(text)
    v, q = format_percent(p), format_percent(Decimal(100) - p)
    share = float(p) / 100
    return ConditionSpec(
        key=f"p={v}", value=v, x=share, fields={"p": v, "q": q},
        target={"1": share, "0": 1 - share},
    )  # fmt: skip


def ternary_point(text: str) -> ConditionSpec:
    """A deck with P("2") = q, P("1") = 40 %, P("0") = 60 − q (q in percent, at most 60)."""
    q = parse_percent(text)
    if q > 60:
        raise FlipbenchError(f'q = {format_percent(q)} leaves P("0") negative; use 0 ≤ q ≤ 60')
    v, rest = format_percent(q), format_percent(Decimal(60) - q)
    share = float(q) / 100
    return ConditionSpec(
        key=f"q={v}", value=v, x=share, fields={"q": v, "r": rest},
        target={"2": share, "1": 0.4, "0": float(Decimal(60) - q) / 100},
    )  # fmt: skip


#: Builders of a condition from one user-given value (`--p`), by name.
POINT_BUILDERS = {"flip": flip_point, "ternary": ternary_point}


class ResolvedExperiment(BaseModel):
    """An experiment with every override applied: exactly what a run sends and how it scores."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    kind: Kind = "flip"
    prompt: str
    system_prompt: str | None
    protocol: TrialProtocol = SingleTurn()
    grid: str
    specs: tuple[ConditionSpec, ...]
    params: dict[str, str] = {}
    d: int = 1
    n: int
    answers: tuple[str, ...]
    first: str
    parser: Parser = "whole-token"
    exact: bool = True
    temperature: float
    max_tokens: int
    # How the model is asked to randomise (`flipbench.interventions`); None is `direct`, so a
    # definition from before interventions reads back, and hashes, as it was recorded.
    intervention: Intervention | None = None

    # Definitions journaled before protocols carry `followup`: read it as the chained protocol.
    _legacy_followup = model_validator(mode="before")(legacy_followup)

    @property
    def followup(self) -> str | None:
        """The first follow-up of a chained experiment, else None (read `protocol` instead)."""
        return self.protocol.followups[0] if isinstance(self.protocol, ChainedTurns) else None

    @property
    def builder_kind(self) -> str:
        """ "flip" when conditions are coin probabilities p (their keys read `p=…`)."""
        return "flip" if all(s.key.startswith("p=") for s in self.specs) else self.kind

    @property
    def p_values(self) -> tuple[str, ...]:
        return tuple(s.value for s in self.specs)

    def definition_hash(self) -> str:
        """A stable hash of everything that shapes the requests and their scoring.

        The protocol enters it as `hashed_fields` says, so that every definition from before
        protocols (one turn, or chained flips) keeps the hash its runs were recorded with; the
        intervention enters it whole, unless it is `direct` (absent), for the same reason.
        """
        data = {
            **self.model_dump(mode="json", exclude={"protocol", "intervention"}),
            **hashed_fields(self.protocol),
        }
        if self.intervention is not None and not self.intervention.is_direct:
            data["intervention"] = self.intervention.model_dump(mode="json")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def conditions(self) -> list[Condition]:
        """The grid as conditions, in grid order, rendered by the experiment's protocol."""
        result = []
        change = self.intervention
        system = self.system_prompt if change is None else change.system(self.system_prompt)
        for spec in self.specs:
            fill = functools.partial(render_template, fields={**self.params, **spec.fields})
            sent = self.protocol.render(system, self.prompt, fill)
            answers = spec.answers or self.answers
            if change is not None:
                sent = _intervened(sent, change, answers)
            condition = Condition(
                key=spec.key, value=spec.value, x=spec.x, messages=sent.messages,
                followups=sent.followups, prefill=sent.prefill, raw_prompt=sent.raw_prompt,
                answers=answers, first=spec.first or self.first, target=spec.target,
                group=spec.group, seeded=change is not None and change.seed,
                request_fields={} if change is None else change.fields_for(answers),
            )  # fmt: skip
            result.append(condition)
        return result


class ExperimentDefinition(BaseModel):
    """The data that defines an experiment; see `docs/experiments.md` for each value."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    version: str
    kind: Kind = "flip"
    prompt: str
    system_prompt: str | None = None
    protocol: TrialProtocol = SingleTurn()  # how a trial talks to the model (tasks.protocols)
    followup: str | None = None  # shorthand: protocol=ChainedTurns(followups=(followup,))
    grids: dict[str, tuple[ConditionSpec, ...]]
    default_grid: str = "default"
    builder: str | None = None  # name in POINT_BUILDERS: allows explicit values (`--p`)
    params: dict[str, str] = {}  # prompt fields shared by every condition (D)
    d: int = 1  # tokens per reply (D flips; 2 for chained flips)
    n: int = 100
    answers: tuple[str, ...]
    first: str
    parser: Parser = "whole-token"
    exact: bool = True  # the answer is one token of a known set: exact mode can read it
    # "first-token": the prompt asks for reasoning, then a choice; exact mode would read a reply
    # with no reasoning, so it is offered only by name (--first-token), never by `auto`.
    exact_reading: Literal["answer", "first-token"] = "answer"
    temperature: float = 1.0
    max_tokens: int = 16

    _legacy_followup = model_validator(mode="before")(legacy_followup)

    @model_validator(mode="after")
    def _check_protocol(self) -> ExperimentDefinition:
        if isinstance(self.protocol, ChainedTurns):
            turns = 1 + len(self.protocol.followups)
            if self.d != turns:
                raise ValueError(f"a chained trial of {turns} turns answers d={turns} tokens")
            if self.exact:
                raise ValueError("a chained trial is several replies: exact mode cannot read it")
        return self

    def resolve(
        self,
        *,
        grid: str | None = None,
        p_values: Sequence[str | float | int] | None = None,
        prompt: str | None = None,
        system_prompt: str | None = None,
        n: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        d: int | None = None,
        intervention: Intervention | None = None,
    ) -> ResolvedExperiment:
        """Apply overrides, validating each so that bad input fails before anything runs."""
        if p_values is not None and grid is not None:
            raise FlipbenchError("give either a named grid or explicit p values, not both")
        if p_values is not None:
            if self.builder is None:
                raise FlipbenchError(f"{self.name} has fixed conditions; choose a named grid")
            build = POINT_BUILDERS[self.builder]
            specs = {s.key: s for s in (build(str(v)) for v in p_values)}
            ordered = tuple(sorted(specs.values(), key=lambda s: Decimal(s.value)))
            grid_name = "custom"
        else:
            grid_name = grid or self.default_grid
            if grid_name not in self.grids:
                known = ", ".join(self.grids)
                raise FlipbenchError(f"unknown grid {grid_name!r} (known: {known})")
            ordered = self.grids[grid_name]
        if not ordered:
            raise FlipbenchError("the grid has no p values")
        n = self.n if n is None else n
        if n <= 0:
            raise FlipbenchError(f"N must be a positive number of samples, got {_short(n)}")
        if n > MAX_N:
            raise FlipbenchError(f"N must be at most {MAX_N:,} samples, got {_short(n)}")
        temperature = self.temperature if temperature is None else temperature
        if not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
            raise FlipbenchError(
                f"temperature must be a finite number in [0, {MAX_TEMPERATURE:g}],"
                f" got {temperature}"
            )
        if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS:
            raise FlipbenchError(
                f"max_tokens must be between 1 and {MAX_TOKENS:,}, got {_short(max_tokens)}"
            )
        params = dict(self.params)
        if d is not None:
            if "D" not in params:
                raise FlipbenchError(f"{self.name} has no D (tokens per reply) to set")
            if not 1 <= d <= MAX_D:
                raise FlipbenchError(f"D must be between 1 and {MAX_D}, got {_short(d)}")
            params["D"] = str(d)
        resolved_d = int(params["D"]) if "D" in params else self.d
        if max_tokens is None and "D" in params:  # not overridden: room for D tokens
            max_tokens = max(self.max_tokens, 2 * resolved_d + 16)
        template = self.prompt if prompt is None else prompt
        if intervention is not None and intervention.is_direct:
            intervention = None  # the baseline is the definition as it was before interventions
        if intervention is not None and intervention.min_max_tokens and max_tokens is None:
            max_tokens = max(self.max_tokens, 2 * resolved_d + 16, intervention.min_max_tokens)
        resolved = ResolvedExperiment(
            name=self.name, version=self.version, kind=self.kind, prompt=template,
            system_prompt=self.system_prompt if system_prompt is None else (system_prompt or None),
            protocol=self.protocol, grid=grid_name, specs=ordered, params=params, d=resolved_d,
            n=n, answers=self.answers, first=self.first, parser=self.parser, exact=self.exact,
            temperature=temperature, max_tokens=max_tokens or self.max_tokens,
            intervention=intervention,
        )  # fmt: skip
        resolved.conditions()  # every template of every condition fills, or fails here
        return resolved


def _intervened(sent: Rendered, change: Intervention, answers: Sequence[str]) -> Rendered:
    """What a condition sends under an intervention: its prompt (the last user message, or the
    raw text) rewritten by the intervention's wrapper."""
    if sent.raw_prompt is not None:
        return replace(sent, raw_prompt=change.wrap(sent.raw_prompt, answers))
    messages = list(sent.messages)
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    messages[last] = {**messages[last], "content": change.wrap(messages[last]["content"], answers)}
    return replace(sent, messages=tuple(messages))


def _short(number: int) -> str:
    """An integer for an error line: a 400-digit one is not printed whole."""
    text = str(number)
    return text if len(text) <= 24 else f"{text[:12]}…({len(text)} digits)"
