"""The declarative shape of an experiment and its resolution into concrete conditions.

An experiment is data (prompt, grids, N, answer space, parser, sampling defaults); a run
resolves it with the user's overrides into a `ResolvedExperiment`, whose hash is recorded
with every result so that two runs are comparable only when their definitions match.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict

from flipbench.errors import FlipbenchError

Message = dict[str, str]


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


class Condition(BaseModel):
    """One point of the grid: the prompt sent and the target probability it asks for."""

    model_config = ConfigDict(frozen=True)

    key: str
    p_percent: str
    p: float
    messages: tuple[Message, ...]


class ResolvedExperiment(BaseModel):
    """An experiment with every override applied: exactly what a run sends and how it scores."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    prompt: str
    system_prompt: str | None
    grid: str
    p_values: tuple[str, ...]
    n: int
    answers: tuple[str, ...]
    first: str
    parser: str
    temperature: float
    max_tokens: int

    def definition_hash(self) -> str:
        """A stable hash of everything that shapes the requests and their scoring."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def conditions(self) -> list[Condition]:
        """The grid as conditions, in grid order."""
        result = []
        for text in self.p_values:
            p = Decimal(text)
            user = self.prompt.format(p=format_percent(p), q=format_percent(Decimal(100) - p))
            messages: list[Message] = []
            if self.system_prompt:
                messages.append({"role": "system", "content": self.system_prompt})
            messages.append({"role": "user", "content": user})
            result.append(
                Condition(
                    key=f"p={text}", p_percent=text, p=float(p) / 100, messages=tuple(messages)
                )
            )
        return result


class ExperimentDefinition(BaseModel):
    """The data that defines an experiment; see `experiments.md` for where each value comes from."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    version: str
    prompt: str
    system_prompt: str | None = None
    grids: dict[str, tuple[str, ...]]
    default_grid: str = "default"
    n: int = 100
    answers: tuple[str, ...]
    first: str
    parser: Literal["whole-token"] = "whole-token"
    temperature: float = 1.0
    max_tokens: int = 16

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
    ) -> ResolvedExperiment:
        """Apply overrides, validating each so that bad input fails before anything runs."""
        if p_values is not None and grid is not None:
            raise FlipbenchError("give either a named grid or explicit p values, not both")
        if p_values is not None:
            values = [parse_percent(v) for v in p_values]
            grid_name = "custom"
        else:
            grid_name = grid or self.default_grid
            if grid_name not in self.grids:
                known = ", ".join(self.grids)
                raise FlipbenchError(f"unknown grid {grid_name!r} (known: {known})")
            values = [parse_percent(v) for v in self.grids[grid_name]]
        if not values:
            raise FlipbenchError("the grid has no p values")
        texts = tuple(format_percent(v) for v in sorted(set(values)))
        n = self.n if n is None else n
        if n <= 0:
            raise FlipbenchError(f"N must be a positive number of samples, got {n}")
        temperature = self.temperature if temperature is None else temperature
        if not (math.isfinite(temperature) and temperature >= 0):
            raise FlipbenchError(f"temperature must be a finite number ≥ 0, got {temperature}")
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        if max_tokens <= 0:
            raise FlipbenchError(f"max_tokens must be positive, got {max_tokens}")
        template = self.prompt if prompt is None else prompt
        try:
            template.format(p="50", q="50")
        except (KeyError, IndexError, ValueError) as exc:
            raise FlipbenchError(
                f"prompt template is invalid ({exc!s}); use {{p}} and {{q}} (= 100 − p) only"
            ) from None
        return ResolvedExperiment(
            name=self.name,
            version=self.version,
            prompt=template,
            system_prompt=self.system_prompt if system_prompt is None else (system_prompt or None),
            grid=grid_name,
            p_values=texts,
            n=n,
            answers=self.answers,
            first=self.first,
            parser=self.parser,
            temperature=temperature,
            max_tokens=max_tokens,
        )
