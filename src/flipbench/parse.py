"""Turn a model's reply into one answer of a finite answer space, or an invalid category.

Matching is whole-token and case-insensitive, and the result is always the canonical
spelling from the answer space, so "**Sun.**" counts as "sun" but "sunny", "10", "0.45",
"1/2", "-1" and "0-1" count as nothing. The common markdown and LaTeX wrappers count as
the token they wrap: `**1**`, `*1*`, `__1__`, `_1_`, `` `1` ``, `$1$`, `$$1$$` (but "$1" alone
is a price, not an answer). Words for numbers ("one") are deliberately NOT
read as digits: the prompt asks for the symbol, and a reply that does not contain it did
not follow the prompt. Invalid replies get a category instead of being dropped, because
how often a model fails to answer is part of what the benchmark reports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

__all__ = [
    "NO_LOGPROBS",
    "InvalidCategory",
    "ParsedAnswer",
    "answer_regex",
    "parse_answer",
    "parse_last_answer",
    "parse_number",
    "parse_reply",
    "parse_text",
    "parse_tokens",
    "unwrap",
]

#: Exact mode asked for top_logprobs and the endpoint returned none (set by backends).
NO_LOGPROBS = "no_logprobs"


class InvalidCategory(StrEnum):
    """Why a reply holds no answer. The values are stored in the database: never rename."""

    EMPTY = "empty"  # no visible content
    TRUNCATED = "truncated"  # finish_reason == "length" and no valid answer could be read
    UNPARSEABLE = "unparseable"  # content present, no answer of the space as a whole token
    AMBIGUOUS = "ambiguous"  # two or more different answers of the space appear
    ERROR = "error"  # the request itself failed (set by callers, never by parse_answer)
    WRONG_COUNT = "wrong_count"  # a D-token reply with more or fewer than D answer tokens


@dataclass(frozen=True)
class ParsedAnswer:
    """Exactly one of `answer` (valid) or `category` (invalid) is set."""

    answer: str | None
    category: InvalidCategory | None

    def __post_init__(self) -> None:
        if (self.answer is None) == (self.category is None):
            raise ValueError("exactly one of answer and category must be set")

    @property
    def valid(self) -> bool:
        return self.category is None


# Not preceded by a word character or by something that makes the token part of a number
# ("0.45" -> no "45", "-1", "+1", "$1", "10%"), nor by "<digit>/" (the "2" of "1/2").
_BEFORE = r"(?<![\w.,%+$-])(?<!\d/)"
# Not followed by a word character or "%", nor by "."/"," + digit (decimals; a sentence-end
# "1." is fine), nor by "/"/"+" + digit (fraction "1/2", sum "1+1"), nor by "-" + word
# character (range "0-1", compound "1-token" or "sun-like").
_AFTER = r"(?![\w%])(?![.,/+]\d)(?!-\w)"


# A span wrapped in `_`, `__`, `$` or `$$` (emphasis, LaTeX math) as a whole token: the same
# delimiter on both sides, no space just inside them, not glued to a word or another `$`
# (`snake_case_1_x`, `$1 and $2`). The span is read as if the delimiters were spaces.
# Linear: a span cannot cross a `_`, a `$` or a line break.
_WRAPPED = re.compile(r"(?<![\w$])(__|_|\$\$|\$)(?=[^\s_$])([^_$\n]*?[^\s_$])\1(?![\w$])")


def unwrap(text: str) -> str:
    """Text with `_x_`, `__x__`, `$x$` and `$$x$$` spans opened up to ` x ` (see _WRAPPED);
    `*`, `**` and backticks need no such help: they are not word characters."""
    if "_" not in text and "$" not in text:
        return text
    return _WRAPPED.sub(r" \2 ", text)


def _token(answer: str) -> str:
    """Escaped answer; inner whitespace of multi-word answers matches any whitespace run."""
    return r"\s+".join(re.escape(part) for part in answer.split())


@lru_cache(maxsize=256)
def _compile(answers: tuple[str, ...], case_sensitive: bool = False) -> re.Pattern[str]:
    if not answers:
        raise ValueError("answer space is empty")
    seen: dict[str, str] = {}
    groups: list[tuple[int, str]] = []
    for i, answer in enumerate(answers):
        if not answer.strip():
            raise ValueError(f"blank answer in answer space {answers!r}")
        key = " ".join(answer.split()).casefold()
        if key in seen:
            if seen[key] == answer:
                continue  # exact duplicate: harmless, keep the first
            # Case-insensitive matching could not tell these apart.
            raise ValueError(f"answers {seen[key]!r} and {answer!r} differ only in case/space")
        seen[key] = answer
        groups.append((i, answer))
    # Longest first, so a multi-word answer wins over a shorter answer it contains.
    groups.sort(key=lambda g: -len(g[1]))
    alternation = "|".join(f"(?P<a{i}>{_token(a)})" for i, a in groups)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(f"{_BEFORE}(?:{alternation}){_AFTER}", flags)


def answer_regex(answers: Sequence[str], case_sensitive: bool = False) -> re.Pattern[str]:
    """Compiled (and cached) whole-token pattern for an answer space.

    A match's `lastgroup` is "a<i>", where answers[i] is the canonical answer it matched.
    Raises ValueError for an empty space, a blank answer, or answers that differ only in case.
    """
    if isinstance(answers, str):
        raise TypeError("answers must be a sequence of answer strings, not one string")
    return _compile(tuple(answers), case_sensitive)


def parse_answer(
    content: str | None, answers: Sequence[str], finish_reason: str | None = None
) -> ParsedAnswer:
    """Parse a reply's visible content against an answer space.

    A readable answer wins over finish_reason == "length": a 1-token reply routinely stops
    on max_tokens. Only when nothing could be read does "length" turn into TRUNCATED.
    """
    pattern = answer_regex(answers)
    truncated = finish_reason == "length"
    if content is None or not content.strip():
        return ParsedAnswer(None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.EMPTY)
    found = {m.lastgroup for m in pattern.finditer(unwrap(content))}
    if len(found) > 1:
        return ParsedAnswer(None, InvalidCategory.AMBIGUOUS)
    if found:
        group = found.pop()
        assert group is not None  # every alternative is a named group
        return ParsedAnswer(answers[int(group[1:])], None)
    return ParsedAnswer(
        None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.UNPARSEABLE
    )


def parse_last_answer(
    text: str | None, answers: Sequence[str], finish_reason: str | None = None
) -> ParsedAnswer:
    """The last whole-token answer mentioned in free text (reasoning, or a reply that argues
    before it chooses): earlier mentions are the deliberation, the last one is the choice.

    Single-letter options ("A"/"B") match case-sensitively: "a" is an article, not gene A.
    """
    if text is None or not text.strip():
        truncated = finish_reason == "length"
        return ParsedAnswer(None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.EMPTY)
    letters = all(len(a) == 1 and a.isalpha() for a in answers)
    matches = list(answer_regex(answers, case_sensitive=letters).finditer(unwrap(text)))
    group = matches[-1].lastgroup if matches else None
    if group is None:
        category = InvalidCategory.TRUNCATED if finish_reason == "length" else None
        return ParsedAnswer(None, category or InvalidCategory.UNPARSEABLE)
    return ParsedAnswer(answers[int(group[1:])], None)


_TOKEN_SPLIT = re.compile(r"[\s,;]+")
_WRAPPING = "`*_$\"'.[](){}"


def parse_tokens(
    content: str | None, answers: Sequence[str], d: int, finish_reason: str | None = None
) -> ParsedAnswer:
    """A reply of exactly D answer tokens ("1 0 1"), stored space-joined.

    Chosen (docs/experiments.md): a reply is valid only with exactly D tokens, each an answer;
    nothing is padded, truncated or guessed. Separators may be spaces, commas or semicolons.
    """
    truncated = finish_reason == "length"
    if content is None or not content.strip():
        return ParsedAnswer(None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.EMPTY)
    tokens = [t.strip(_WRAPPING) for t in _TOKEN_SPLIT.split(content.strip())]
    tokens = [t for t in tokens if t]
    if not tokens or any(t not in answers for t in tokens):
        return ParsedAnswer(
            None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.UNPARSEABLE
        )
    if len(tokens) != d:
        short = truncated and len(tokens) < d
        return ParsedAnswer(
            None, InvalidCategory.TRUNCATED if short else InvalidCategory.WRONG_COUNT
        )
    return ParsedAnswer(" ".join(tokens), None)


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w]|\.\d)")


def parse_number(content: str | None, finish_reason: str | None = None) -> ParsedAnswer:
    """The one number in a reply ("103", "**97.5**"); two different numbers are ambiguous."""
    truncated = finish_reason == "length"
    if content is None or not content.strip():
        return ParsedAnswer(None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.EMPTY)
    found = {m.group(0).lstrip("+") for m in _NUMBER.finditer(unwrap(content))}
    if len(found) > 1:
        return ParsedAnswer(None, InvalidCategory.AMBIGUOUS)
    if not found:
        return ParsedAnswer(
            None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.UNPARSEABLE
        )
    return ParsedAnswer(found.pop(), None)


#: The answer recorded for a free-text reply: the text itself is in the journal's content column.
TEXT_ANSWER = "text"


def parse_text(content: str | None, finish_reason: str | None = None) -> ParsedAnswer:
    """A generated text (a story) is its own answer: any visible text is valid, even when cut
    at max_tokens, because its kind reads only what the text holds (complete word gaps)."""
    if content is None or not content.strip():
        truncated = finish_reason == "length"
        return ParsedAnswer(None, InvalidCategory.TRUNCATED if truncated else InvalidCategory.EMPTY)
    return ParsedAnswer(TEXT_ANSWER, None)


def parse_reply(
    content: str | None,
    answers: Sequence[str],
    parser: str,
    *,
    d: int = 1,
    finish_reason: str | None = None,
) -> ParsedAnswer:
    """Dispatch on an experiment's parser name (experiments are data; parsers are named)."""
    if parser == "whole-token":
        return parse_answer(content, answers, finish_reason)
    if parser == "d-tokens":
        return parse_tokens(content, answers, d, finish_reason)
    if parser == "number":
        return parse_number(content, finish_reason)
    if parser == "text":
        return parse_text(content, finish_reason)
    if parser == "last-option":
        return parse_last_answer(content, answers, finish_reason)
    raise ValueError(f"unknown parser {parser!r}")
