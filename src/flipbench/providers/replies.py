"""Reading a chat or text completion of any shape into a `Reply`, and exact mode's answers.

Every reply is untrusted: JSON is parsed with a depth limit, text is cut to a cap, secrets are
masked, and a reply of any shape becomes a `Reply` (unreadable ones carry an invalid category)
rather than an exception, because a paid reply must be journaled whatever it looks like. The
HTTP client that produces the `Exchange` read here is `openai_compat.ChatClient`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from flipbench.parse import NO_LOGPROBS
from flipbench.providers.base import Reply
from flipbench.providers.censoring import Censoring, SharedToken
from flipbench.providers.failures import Failure, classify
from flipbench.safety import clean_json, mask_secrets, secret_values, storable

# Response headers worth keeping with each reply (never request headers: they hold the key).
KEPT_HEADERS = ("x-generation-id", "x-openrouter-cache-status", "retry-after", "x-request-id")
# Content (and reasoning) longer than this is cut before it is parsed or stored; the cut is
# recorded with the sample. No answer of any experiment needs more.
MAX_CONTENT_CHARS = 100_000
# Deeper JSON is refused: no legitimate reply nests more than a handful of levels, and deep
# nesting is how a hostile body exhausts the recursion of every later reader.
MAX_JSON_DEPTH = 64
#: Invalid categories of replies that arrived but cannot be read (stored with the sample).
MALFORMED = "malformed"
TOO_LARGE = "too_large"
#: The endpoints, relative to the base URL: chat messages, and raw text (`prompt`).
CHAT = "chat/completions"
COMPLETIONS = "completions"


@dataclass
class Exchange:
    """Everything one HTTP round trip produced, before any interpretation."""

    request: dict[str, Any]
    status: int | None
    headers: dict[str, str]
    text: str | None
    data: Any
    error: BaseException | None
    latency_s: float
    service: str = "the server"
    body_cut_at: int | None = None  # the body was longer than this many bytes and not read
    trusted: bool = False  # from a server this process started (skips the credential scan)
    endpoint: str = CHAT  # COMPLETIONS: the reply's text is `choices[0].text`

    def failure(self) -> Failure | None:
        if self.body_cut_at is not None and (self.status is None or self.status < 300):
            return None  # a paid reply too large to read: journaled as `too_large`, not retried
        return classify(
            status=self.status, data=self.data, text=self.text, headers=self.headers,
            error=self.error, service=self.service,
        )  # fmt: skip


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def parse_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON of a reply, or None when it is not JSON or nests deeper than `max_depth`."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if json_depth(data) <= max_depth else None


def to_reply(ex: Exchange, failure: Failure | None) -> Reply:
    """Content, finish reason, cost and provenance of a reply, or the reason it has none.

    Whatever arrived is kept for the journal, scrubbed of credentials and made storable; a
    reply whose shape cannot be read gets an invalid category instead of raising.
    """
    kept = {k: storable(mask_secrets(ex.headers[k])) for k in KEPT_HEADERS if k in ex.headers}
    if failure is not None:
        meta: dict[str, Any] = {"failure": failure.reason}
        if kept:
            meta["headers"] = kept
        return Reply(
            request=ex.request, response=_kept_response(ex), ok=False, http_status=ex.status,
            latency_s=ex.latency_s, error=failure.message, meta=meta,
        )  # fmt: skip
    if ex.body_cut_at is not None or not isinstance(ex.data, dict):
        meta = {"headers": kept} if kept else {}
        if ex.body_cut_at is not None:
            meta["body_cut_at_bytes"] = ex.body_cut_at
        reply = Reply(
            request=ex.request, response=_kept_response(ex), ok=True, http_status=ex.status,
            latency_s=ex.latency_s, meta=meta,
        )  # fmt: skip
        reply.invalid_category = TOO_LARGE if ex.body_cut_at is not None else MALFORMED
        return reply
    return _read_completion(ex, ex.data if ex.trusted else _cleaned(ex), kept)


# Anything that might need cleaning: escaped or raw control characters and surrogates, bidi
# overrides, and words that credentials come with. A reply without any (almost all) is kept
# as parsed; the others are walked string by string.
_SUSPECT = re.compile(
    r"\\u(?:00[01][0-9a-fA-F]|007[fF]|00[89][0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2}"
    r"|202[a-eA-E]|206[6-9])|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
    r"|(?i:bearer|basic\s|sk-|://[^/\s\"]*@|authorization|api[_-]?key|password|secret|token\s*[:=])"
)


def _cleaned(ex: Exchange) -> Any:
    text = ex.text or ""
    if _SUSPECT.search(text) is None and not any(v in text for v in secret_values()):
        return ex.data
    return clean_json(ex.data)


def _kept_response(ex: Exchange) -> Any:
    """What the journal keeps of an unreadable or failed reply: the JSON, else capped text."""
    if ex.data is not None:
        return clean_json(ex.data)
    if ex.text is None:
        return None
    text = ex.text if len(ex.text) <= MAX_CONTENT_CHARS else ex.text[:MAX_CONTENT_CHARS]
    return storable(mask_secrets(text))


def _text(value: Any) -> tuple[str | None, bool]:
    """A message field as text, and whether its shape was readable. Content may be a string or
    a list of typed parts (`[{"type": "text", "text": …}]`, a legal OpenAI shape)."""
    if value is None or isinstance(value, str):
        return value, True
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        texts = [p.get("text") for p in value if p.get("type", "text") in ("text", "output_text")]
        if all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str)), True
    return None, False


def _cut(text: str | None, name: str, meta: dict[str, Any]) -> str | None:
    if text is not None and len(text) > MAX_CONTENT_CHARS:
        meta.setdefault("truncated", {})[name] = len(text)
        return text[:MAX_CONTENT_CHARS]
    return text


def _read_completion(ex: Exchange, data: dict[str, Any], kept: dict[str, str]) -> Reply:
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if ex.endpoint == COMPLETIONS:  # a text completion: its `text` is the content
        text = choice.get("text", ...) if isinstance(choice, dict) else ...
        message = None if text is ... else {"content": text}
    usage = data.get("usage")
    meta: dict[str, Any] = {
        k: v
        for k, v in {
            "generation_id": data.get("id"),
            "provider": data.get("provider"),
            "native_finish_reason": choice.get("native_finish_reason")
            if isinstance(choice, dict)
            else None,
            "usage": usage or None,
            "headers": kept or None,
        }.items()
        if v
    }
    cost, flag = reported_cost(usage)
    if flag is not None:
        meta["cost_flag"] = flag
    fields = message if isinstance(message, dict) else {}
    content, readable = _text(fields.get("content"))
    reasoning, _ = _text(fields.get("reasoning"))
    content = _cut(content, "content", meta)
    reasoning = _cut(reasoning, "reasoning", meta)
    if ex.trusted:  # untrusted replies were cleaned whole already
        content = None if content is None else storable(content)
        reasoning = None if reasoning is None else storable(reasoning)
    if reasoning:
        meta["reasoning"] = reasoning
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    _cut_content_in(data, meta, ex.endpoint)
    reply = Reply(
        request=ex.request,
        response=data,
        ok=True,
        http_status=ex.status,
        content=content,
        finish_reason=None if finish is None else str(finish)[:64],
        latency_s=ex.latency_s,
        cost=cost,
        meta=meta,
    )
    if not readable or not isinstance(message, dict):  # e.g. content 1, "message": "1"
        reply.invalid_category = MALFORMED
    return reply


def _cut_content_in(data: dict[str, Any], meta: dict[str, Any], endpoint: str) -> None:
    """Cut over-long message text in the stored response too, so a huge reply is stored capped."""
    if "truncated" not in meta:
        return
    completion = endpoint == COMPLETIONS  # a text completion's text is `choices[i].text`
    for choice in data.get("choices") or []:
        holder = (
            choice if completion else choice.get("message") if isinstance(choice, dict) else None
        )
        if isinstance(holder, dict):
            for name in ("text",) if completion else ("content", "reasoning"):
                if isinstance(holder.get(name), str) and len(holder[name]) > MAX_CONTENT_CHARS:
                    holder[name] = holder[name][:MAX_CONTENT_CHARS]


def reported_cost(usage: Any) -> tuple[float | None, str | None]:
    """`usage.cost` as a usable number, and a flag when what was reported cannot be used as is.

    Flags: `negative` (counted as 0), `non_finite` (infinite, NaN or overflowing), `unreadable`
    (not a number). The budget counts flagged costs conservatively (see limits.Budget).
    """
    if not isinstance(usage, dict) or "cost" not in usage or usage["cost"] is None:
        return None, None
    raw = usage["cost"]
    if isinstance(raw, bool):
        return None, "unreadable"
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        return None, "unreadable"
    if not math.isfinite(value):
        return None, "non_finite"
    if value < 0:
        return 0.0, "negative"
    return value, None


def _is_logprob(value: Any) -> TypeGuard[float]:
    """A number that can be a log-probability (≤ 0 or -inf; NaN and +inf are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value <= 0 or math.isclose(value, 0.0, abs_tol=1e-6)


def first_choice(data: Any) -> dict[str, Any]:
    """`choices[0]` when the reply has one as an object, else an empty dict."""
    choices = data.get("choices") if isinstance(data, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    return choice if isinstance(choice, dict) else {}


def first_candidates(data: Any) -> list[tuple[Any, Any]]:
    """(token, logprob) of each candidate for the first generated token, in either shape:
    chat's `logprobs.content[0].top_logprobs` list (llama.cpp uses it for text completions
    too) or the legacy completions' `logprobs.top_logprobs[0]` object of token → logprob."""
    logprobs = first_choice(data).get("logprobs")
    if not isinstance(logprobs, dict):
        return []
    entries = logprobs.get("content")
    if isinstance(entries, list):
        first = entries[0] if entries else None
        listed = first.get("top_logprobs") if isinstance(first, dict) else None
        return [
            (c.get("token", ""), c.get("logprob"))
            for c in (listed if isinstance(listed, list) else [])
            if isinstance(c, dict)
        ]
    legacy = logprobs.get("top_logprobs")
    first = legacy[0] if isinstance(legacy, list) and legacy else None
    return list(first.items()) if isinstance(first, dict) else []


def answer_logprobs(data: Any, answers: Sequence[str]) -> tuple[dict[str, list[float]], set[str]]:
    """Log-probabilities of the first-token candidates that begin an answer.

    A candidate counts for an answer when its text (stripped) is the answer, or — for answers
    longer than one token ("affordable" = "aff" + "ordable") — a prefix of at least two
    characters (one digit, for numbers) of exactly one answer (case-insensitive, as the
    parser reads words). That is
    the probability of the answer's first token: exact for one-token answers, and for longer
    ones the probability that the reply starts on that answer.
    Returns the matches and the answers that did not appear among the returned candidates.
    """
    found: dict[str, list[float]] = {a: [] for a in answers}
    folded = {a: a.casefold() for a in answers}
    for token, logprob in first_candidates(data):
        match = _answer_for(str(token).strip(), found, folded)
        if match is not None and _is_logprob(logprob):
            found[match].append(float(logprob))
    missing = {a for a, lps in found.items() if not lps}
    return found, missing


def _answer_for(text: str, found: dict[str, list[float]], folded: dict[str, str]) -> str | None:
    if text in found:
        return text
    key = text.casefold()
    exact = [a for a, f in folded.items() if f == key]
    if len(exact) == 1:
        return exact[0]
    if len(key) < 2 and not key.isdigit():  # tokenizers split numbers digit by digit
        return None
    prefixed = [a for a, f in folded.items() if len(f) > len(key) and f.startswith(key)]
    return prefixed[0] if len(prefixed) == 1 else None


def read_exact(reply: Reply, answers: Sequence[str], top: int) -> Reply:
    """Exact mode's reading of a reply to a `top`-logprobs request: the answers' first-token
    log-probabilities, or `no_logprobs` when the endpoint returned none (the runner then stops
    exact mode). Answers that were not among the candidates are listed in the meta."""
    if not reply.ok or reply.invalid_category is not None:
        return reply
    if not first_choice(reply.response).get("logprobs"):
        reply.invalid_category = NO_LOGPROBS
        return reply
    found, missing = answer_logprobs(reply.response, answers)
    reply.answer_logprobs = found
    reply.meta["top_logprobs"] = top
    if missing:
        reply.meta["answers_below_top_logprobs"] = sorted(missing)
    censoring = top_censoring(reply.response, answers, top)
    if censoring is not None and censoring.censored:
        reply.censoring = censoring
    return reply


def top_censoring(data: Any, answers: Sequence[str], top: int) -> Censoring | None:
    """What a top-`top` candidate list leaves unknown about the answers (`censoring`): the
    answers no candidate begins, and the candidates that may begin several answers (equal to
    one, case-insensitively, or a prefix of it as `answer_logprobs` reads prefixes). None when
    no candidate has a usable log-probability (nothing was listed)."""
    listed = [(str(t).strip(), float(lp)) for t, lp in first_candidates(data) if _is_logprob(lp)]
    if not listed:
        return None
    folded = {a: a.casefold() for a in answers}
    unique: dict[str, list[float]] = {a: [] for a in answers}
    shared: list[SharedToken] = []
    for text, logprob in listed:
        begins = [a for a, f in folded.items() if _may_begin(text.casefold(), f)]
        if len(begins) == 1:
            unique[begins[0]].append(logprob)
        elif begins:
            shared.append(SharedToken(text, logprob, tuple(begins)))
    covered = {a for s in shared for a in s.answers}
    missing = tuple(a for a in answers if not unique[a] and a not in covered)
    return Censoring(
        {a: tuple(lps) for a, lps in unique.items()}, tuple(shared), missing,
        min(lp for _, lp in listed), top, len(listed),
    )  # fmt: skip


def _may_begin(key: str, answer: str) -> bool:
    """Whether a candidate (stripped, case-folded) may be the first token of `answer`."""
    if key == answer:
        return True
    return (len(key) >= 2 or key.isdigit()) and answer.startswith(key)


def flag_cache_hit(reply: Reply) -> None:
    """A cached reply repeats an earlier sample: it is not a new draw, so it is invalid."""
    headers = reply.meta.get("headers") or {}
    usage = reply.meta.get("usage") or {}
    hit = str(headers.get("x-openrouter-cache-status", "")).upper() == "HIT"
    zero = (
        isinstance(usage, dict)
        and usage
        and not any(usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    )
    if hit or zero:
        reply.invalid_category = "cache_hit"
