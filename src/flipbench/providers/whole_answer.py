"""Whole-answer probabilities: exact mode's reading of answers of any number of tokens.

The probability that a reply *is* the answer `s`, read from a next-token model:

    P(s) = Π_i P(t_i | prompt, t_<i) · P(stop | prompt, s)

over the tokens t of `s` (the tokenizer's own spelling of it after the prompt), where *stop* is
the mass of the next tokens that end the word: end of turn, or a token that starts with a
non-word character. The forms summed for one answer are its *surface forms*: the spellings
the sampled whole-token parser reads as that answer in a bare reply (`surface_forms`). An
answer's probability is the sum over its forms; coverage is the sum over answers.

Any backend that can tokenise, detokenise and list next-token log-probabilities after a token
prefix (`NextTokenModel`) gets this reading through `read_whole_answers` and
`whole_answer_reply`; requests are shared through a trie of token prefixes (each prefix asked
once) and counted.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from flipbench.providers.base import Reply

#: The exact reading recorded in a reply's meta (`exact_reading`).
WHOLE_ANSWER = "whole-answer"
FIRST_TOKEN = "first-token"
#: Rates are read to within this much of the whole-vocabulary reading: top lists are widened
#: until the mass they leave unaccounted for is at most this share of the coverage.
TOLERANCE = 1e-4

_WORD_START = re.compile(r"\w")


def case_variants(answer: str) -> tuple[str, ...]:
    """The answer as given, in lower case, capitalised and in upper case (duplicates dropped):
    the spellings the case-insensitive whole-token parser reads as it."""
    return tuple(
        dict.fromkeys(
            (answer, answer.lower(), answer[:1].upper() + answer[1:].lower(), answer.upper())
        )
    )


def surface_forms(answer: str) -> tuple[str, ...]:
    """The finite set of spellings read as `answer` in a bare reply: its case variants, each
    without and with one leading space. Case is what the parser ignores; the space is what a
    tokenizer puts at the start of a word."""
    return tuple(f"{lead}{case}" for case in case_variants(answer) for lead in ("", " "))


def ends_word(text: str) -> bool:
    """A next token after which the form is a whole answer: end of turn (a special token such
    as `<|im_end|>`, or an empty piece) or a token that starts with a non-word character other
    than `%` (a space, punctuation, a line break), so that "dog" does not collect "doge" nor
    "1" collect "10" or "1%"."""
    return not text or (_WORD_START.match(text) is None and not text.startswith("%"))


@dataclass(frozen=True)
class NextTokens:
    """The next-token log-probabilities after one prefix: token id → log P, each token's
    text, and whether the list is the whole vocabulary (else the most probable tokens)."""

    logprobs: Mapping[int, float]
    texts: Mapping[int, str]
    complete: bool

    @property
    def residual(self) -> float:
        """The mass of the tokens not listed (0 for the whole vocabulary)."""
        if self.complete:
            return 0.0
        return max(0.0, 1.0 - sum(math.exp(lp) for lp in self.logprobs.values()))


class ReadingFailed(Exception):
    """A request of the reading failed (the reply is journaled as an error)."""


class Tokenizer(Protocol):
    """A model's tokenizer, as the reading of a form's tokens needs it."""

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """The tokens of `text` (special tokens in it parsed; BOS added with add_special as
        the model's metadata says)."""
        ...

    async def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`."""
        ...


class NextTokenModel(Tokenizer, Protocol):
    """What the whole-answer reading needs of a model (llama.cpp, a scripted fake)."""

    async def next_tokens(self, tokens: Sequence[int], *, complete: bool) -> NextTokens:
        """The next-token log-probabilities after `tokens`; the whole vocabulary when
        `complete`, else at least the most probable tokens."""
        ...

    async def token_logprob(self, tokens: Sequence[int], token: int) -> float:
        """log P(`token` | `tokens`), for a token below the top list (one cheap request
        instead of the whole vocabulary)."""
        ...


@runtime_checkable
class StopMassModel(Protocol):
    """A model that can tell the stop factor's mass over the whole vocabulary without listing
    it (llama.cpp: `llama_reading.LlamaNextTokens.stop_mass`): cheaper than widening a list."""

    async def stop_mass(self, tokens: Sequence[int]) -> float | None:
        """P(the next token ends the word | tokens) in the units of the model's log-probs, or
        None when it cannot be read so (the list is then widened)."""
        ...

    @property
    def stop_requests(self) -> int:
        """Requests spent on stop masses so far."""
        ...


@dataclass(frozen=True)
class FormReading:
    """One surface form: its tokens, each token's log-probability (-inf where not read) and
    the stop factor's, read from the lists at hand. `logprob` is a lower bound and `slack` the
    most the form's probability can exceed it (mass below a top list not yet widened);
    `blocking` is the prefix whose list, widened to the whole vocabulary, would remove it."""

    answer: str
    form: str
    tokens: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    stop_logprob: float
    tokenized: str  # "suffix" (of prompt + form) or "alone" (the prompt's tokens merged)
    slack: float = 0.0
    blocking: tuple[int, ...] | None = None

    @property
    def logprob(self) -> float:
        return sum(self.token_logprobs) + self.stop_logprob

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    def as_meta(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "answer": self.answer, "form": self.form, "tokens": list(self.tokens),
            "token_logprobs": [num(x) for x in self.token_logprobs],
            "stop_logprob": num(self.stop_logprob), "logprob": num(self.logprob),
            "slack": self.slack, "tokenized": self.tokenized,
        }  # fmt: skip


@dataclass
class WholeAnswers:
    """The reading of one prompt: every form, the forms that could not be tokenised alone as
    themselves, and what it cost."""

    forms: list[FormReading] = field(default_factory=list)
    untokenizable: list[str] = field(default_factory=list)
    requests: int = 0  # next-token requests (one per distinct prefix, widened ones counted)
    widened: int = 0  # of which lists widened to the whole vocabulary
    forced: int = 0  # of which one token's probability asked for (below a top list)
    stop_masses: int = 0  # stop factors read over the whole vocabulary without a list
    slack: float = 0.0  # the most the forms' total can exceed the sum of their lower bounds
    tokenize_requests: int = 0  # tokenize and detokenize requests
    prompt_tokens: int = 0
    seconds: float = 0.0

    def answer_logprobs(self, answers: Sequence[str]) -> dict[str, list[float]]:
        """Per answer, the log-probabilities of its forms (forms of probability 0 left out)."""
        found: dict[str, list[float]] = {a: [] for a in answers}
        for f in self.forms:
            if math.isfinite(f.logprob):
                found[f.answer].append(f.logprob)
        return found

    def meta(self) -> dict[str, Any]:
        return {
            "forms": [f.as_meta() for f in self.forms],
            "untokenizable": list(self.untokenizable),
            "requests": self.requests,
            "widened": self.widened,
            "forced": self.forced,
            "stop_masses": self.stop_masses,
            "slack": self.slack,
            "tolerance": TOLERANCE,
            "tokenize_requests": self.tokenize_requests,
            "prompt_tokens": self.prompt_tokens,
            "seconds": round(self.seconds, 4),
        }


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values, default=-math.inf)
    if not math.isfinite(top):
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


async def continuation_tokens(
    model: Tokenizer, prompt: str, base: Sequence[int], form: str
) -> tuple[tuple[list[int], str] | None, int]:
    """The form's tokens as the model would produce them after the prompt (whose tokens are
    `base`): the suffix of prompt + form past the prompt's own tokens, when those stay a prefix
    and the suffix reads back as the form ("suffix"); else the form tokenised alone (a merge
    at the boundary: "alone"); else None. Also the tokenize requests it took. One rule for
    every backend that reads continuations (llama.cpp here, transformers in `hf`)."""
    full = await model.tokenize(prompt + form, add_special=True)
    requests = 1
    if full[: len(base)] == list(base) and len(full) > len(base):
        suffix = full[len(base) :]
        requests += 1
        if await model.detokenize(suffix) == form:
            return (suffix, "suffix"), requests
    alone = await model.tokenize(form, add_special=False)
    requests += 2
    if alone and await model.detokenize(alone) == form:
        return (alone, "alone"), requests
    return None, requests


class _Reader:
    def __init__(self, model: NextTokenModel, prompt: str) -> None:
        self.model, self.prompt = model, prompt
        self.result = WholeAnswers()
        self.base: list[int] = []
        self._nodes: dict[tuple[int, ...], NextTokens] = {}
        self._forced: dict[tuple[tuple[int, ...], int], float] = {}
        self._stops: dict[tuple[int, ...], float] = {}

    async def tokens_of(self, form: str) -> tuple[list[int], str] | None:
        found, requests = await continuation_tokens(self.model, self.prompt, self.base, form)
        self.result.tokenize_requests += requests
        return found

    async def node(self, prefix: tuple[int, ...], complete: bool = False) -> NextTokens:
        """The next tokens after prompt + prefix, asked once per prefix (and once more only
        to widen a top list to the whole vocabulary)."""
        got = self._nodes.get(prefix)
        if got is not None and (got.complete or not complete):
            return got
        got = await self.model.next_tokens([*self.base, *prefix], complete=complete)
        self.result.requests += 1
        self.result.widened += complete
        self._nodes[prefix] = got
        return got

    async def forced(self, prefix: tuple[int, ...], token: int) -> float:
        """log P(token | prompt + prefix) for a token a top list leaves out, asked once."""
        key = (prefix, token)
        if key not in self._forced:
            self._forced[key] = await self.model.token_logprob([*self.base, *prefix], token)
            self.result.requests += 1
            self.result.forced += 1
        return self._forced[key]

    async def settle(self, prefix: tuple[int, ...]) -> None:
        """Remove the slack of the stop factor after `prefix`: its mass over the whole
        vocabulary when the model can tell it, else the list widened to the vocabulary."""
        if isinstance(self.model, StopMassModel):
            before = self.model.stop_requests
            mass = await self.model.stop_mass([*self.base, *prefix])
            self.result.requests += self.model.stop_requests - before
            if mass is not None:
                self._stops[prefix] = mass
                self.result.stop_masses += 1
                return
        await self.node(prefix, complete=True)

    async def read(self, answer: str, form: str, tokens: list[int], how: str) -> FormReading:
        """The form from the lists at hand: a token below a top list is asked for alone; the
        stop mass counts the listed tokens that end the word, and the mass below the list
        after the form is its slack."""
        lps: list[float] = []
        for i, token in enumerate(tokens):
            prefix = tuple(tokens[:i])
            nxt = await self.node(prefix)
            if token in nxt.logprobs:
                lps.append(nxt.logprobs[token])
            elif not nxt.complete:
                lps.append(await self.forced(prefix, token))
            else:
                lps.append(-math.inf)
            if lps[-1] == -math.inf:  # probability 0: nothing after it to read
                lps += [-math.inf] * (len(tokens) - i - 1)
                return FormReading(answer, form, tuple(tokens), tuple(lps), -math.inf, how)
        after = await self.node(tuple(tokens))
        mass = self._stops.get(tuple(tokens))
        if mass is not None and not after.complete:
            stop_lp = math.log(mass) if mass > 0 else -math.inf
            return FormReading(answer, form, tuple(tokens), tuple(lps), stop_lp, how)
        stop = [lp for t, lp in after.logprobs.items() if ends_word(after.texts.get(t, ""))]
        slack = math.exp(sum(lps)) * after.residual
        blocking = None if after.complete else tuple(tokens)
        return FormReading(answer, form, tuple(tokens), tuple(lps), _logsumexp(stop), how,
                           slack, blocking)  # fmt: skip


async def read_whole_answers(
    model: NextTokenModel, prompt: str, answers: Sequence[str]
) -> WholeAnswers:
    """Every surface form of every answer after `prompt` (the text the model continues, chat
    template applied). Top lists first (a token below one asked for alone); the stop factor after
    the form that leaves the most slack (unlisted mass that might end the word) is read over the
    whole vocabulary (`StopMassModel`, or its list widened) until the total slack is at most
    `TOLERANCE` × coverage, so every rate is within `TOLERANCE` of the whole-vocabulary reading.
    Raises `ReadingFailed` when a request fails."""
    started = time.perf_counter()
    reader = _Reader(model, prompt)
    reader.base = await model.tokenize(prompt, add_special=True)
    reader.result.tokenize_requests += 1
    reader.result.prompt_tokens = len(reader.base)
    planned: list[tuple[str, str, list[int], str]] = []
    for answer in answers:
        for form in surface_forms(answer):
            found = await reader.tokens_of(form)
            if found is None:
                reader.result.untokenizable.append(form)
            else:
                planned.append((answer, form, *found))
    # In token order, so that each request extends the one before (the prompt cache's case).
    ordered = sorted(planned, key=lambda p: p[2])
    while True:
        forms = [await reader.read(*p) for p in ordered]
        slack = sum(f.slack for f in forms)
        worst = max(forms, key=lambda f: f.slack, default=None)
        if worst is None or worst.blocking is None:
            break
        if slack <= TOLERANCE * sum(f.probability for f in forms):
            break
        await reader.settle(worst.blocking)
    order = {(a, f): i for i, (a, f, _, _) in enumerate(planned)}
    reader.result.forms = sorted(forms, key=lambda f: order[(f.answer, f.form)])
    reader.result.slack = slack
    reader.result.seconds = time.perf_counter() - started
    return reader.result


async def whole_answer_reply(
    model: NextTokenModel, prompt: str, answers: Sequence[str], request: dict[str, Any]
) -> Reply:
    """Exact mode's reply from the whole-answer reading: `answer_logprobs` holds each answer's
    forms (summed and renormalised by `exact_distribution`), the meta every form's tokens and
    log-probabilities, and the reading's cost. A failed request makes an error reply."""
    started = time.perf_counter()
    body = {**request, "exact_reading": WHOLE_ANSWER, "answers": list(answers)}
    try:
        whole = await read_whole_answers(model, prompt, answers)
    except ReadingFailed as exc:
        return Reply(body, None, ok=False, error=str(exc),
                     latency_s=time.perf_counter() - started)  # fmt: skip
    return reading_reply(whole, answers, body, time.perf_counter() - started)


def reading_reply(
    whole: WholeAnswers, answers: Sequence[str], body: dict[str, Any], latency_s: float
) -> Reply:
    """The exact-mode reply that records a whole-answer reading (`body`: the request, with
    the reading named): every backend's readings are journaled in this one shape."""
    meta = whole.meta()
    reply = Reply(
        body, {"whole_answer": meta}, ok=True, latency_s=latency_s,
        meta={"exact_reading": WHOLE_ANSWER, "whole_answer": meta},
    )  # fmt: skip
    reply.answer_logprobs = whole.answer_logprobs(answers)
    return reply
