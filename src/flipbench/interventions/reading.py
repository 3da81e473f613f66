"""Reading a reply the way its intervention asked for it: after the last `Answer:` line, from a
JSON object, from a tool call; and the probabilities a `verbalized` reply states.

Every reply is untrusted text: patterns are linear, JSON is read from a capped string with its
depth bounded, and a reply that does not hold what was asked for is an invalid category, never
an exception and never a guess (a stated "30" is not read as 30 %: only "0.3" or "30%" are).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from flipbench.interventions.model import Intervention
from flipbench.parse import InvalidCategory, ParsedAnswer, parse_reply

#: The last line that opens with "Answer:" (markdown emphasis allowed): what follows is read.
_ANSWER_LINE = re.compile(
    r"^[ \t>*_#]*(?:final[ \t]+)?answer[ \t*_]*[:：][ \t*_]*(?P<rest>[^\n]*)$", re.I | re.M
)
#: `P(answer) = 0.3`, `P("1") = 30%`, `P(heads): 0.25`.
_STATED = re.compile(
    r"P\(\s*[\"'`]?(?P<answer>[^()\"'`\n]{1,64}?)[\"'`]?\s*\)\s*[=:≈]\s*"
    r"(?P<value>\d{1,3}(?:\.\d{1,12})?)\s*(?P<percent>%?)"
)
#: JSON longer than this is not an answer object (and is not parsed).
MAX_JSON_CHARS = 10_000


def _invalid(finish_reason: str | None, empty: bool = False) -> ParsedAnswer:
    if finish_reason == "length":
        return ParsedAnswer(None, InvalidCategory.TRUNCATED)
    return ParsedAnswer(None, InvalidCategory.EMPTY if empty else InvalidCategory.UNPARSEABLE)


def after_answer_line(text: str | None) -> str | None:
    """What follows the reply's last `Answer:` line (None when it has none)."""
    if not text:
        return None
    matches = list(_ANSWER_LINE.finditer(text))
    return matches[-1].group("rest") if matches else None


def stated_distribution(text: str | None, answers: Sequence[str]) -> dict[str, float] | None:
    """The `P(answer) = p` lines of a reply, one probability per answer of the space (fractions;
    "30%" is 0.3), or None when any answer is missing, stated twice differently, or outside
    [0, 1]. The sum is not forced to 1: how far it is from 1 is part of what was stated."""
    if not text or not answers:
        return None
    keys = {" ".join(a.split()).casefold(): a for a in answers}
    stated: dict[str, float] = {}
    for match in _STATED.finditer(text):
        answer = keys.get(" ".join(match.group("answer").split()).casefold())
        if answer is None:
            continue
        value = float(match.group("value")) / (100 if match.group("percent") else 1)
        if not (math.isfinite(value) and 0 <= value <= 1):
            return None
        if stated.setdefault(answer, value) != value:
            return None
    return stated if len(stated) == len(keys) else None


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object, read from a capped string (a code fence around it is allowed)."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if not text or len(text) > MAX_JSON_CHARS:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _enum_answer(data: dict[str, Any] | None, answers: Sequence[str]) -> ParsedAnswer | None:
    """The object's `answer`, exactly one of the answers (the schema's enum), else None."""
    if data is None:
        return None
    value = data.get("answer")
    if isinstance(value, str) and value in answers:
        return ParsedAnswer(value, None)
    return ParsedAnswer(None, InvalidCategory.UNPARSEABLE)


def tool_arguments(response: Any) -> str | None:
    """The `arguments` string of the first tool call of a chat response, if there is one."""
    choices = response.get("choices") if isinstance(response, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    call = calls[0] if isinstance(calls, list) and calls else None
    function = call.get("function") if isinstance(call, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if isinstance(arguments, dict):  # some servers send the object itself
        return json.dumps(arguments)
    return arguments if isinstance(arguments, str) else None


def read_reply(
    intervention: Intervention,
    content: str | None,
    response: Any,
    answers: Sequence[str],
    parser: str,
    *,
    d: int = 1,
    finish_reason: str | None = None,
) -> tuple[ParsedAnswer, dict[str, Any]]:
    """The answer of one reply as `intervention` reads it, and what to journal with it."""
    reader = intervention.reader
    if reader == "experiment":
        return parse_reply(content, answers, parser, d=d, finish_reason=finish_reason), {}
    if reader in ("answer-line", "verbalized"):
        meta: dict[str, Any] = {}
        if reader == "verbalized":
            stated = stated_distribution(content, answers)
            meta["stated"] = stated
        rest = after_answer_line(content)
        if rest is None:
            return _invalid(finish_reason, empty=not (content or "").strip()), meta
        parsed = parse_reply(rest, answers, parser, d=d, finish_reason=None)
        return parsed, meta
    if reader == "json":
        found = _enum_answer(_json_object(content), answers)
        return found or _invalid(finish_reason, empty=not (content or "").strip()), {}
    arguments = tool_arguments(response)
    found = _enum_answer(_json_object(arguments), answers)
    if found is None:
        return _invalid(finish_reason, empty=arguments is None and not (content or "").strip()), {}
    return found, {}
