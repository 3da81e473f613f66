"""An OpenAI-compatible chat-completions client on aiohttp, and the reading of its replies.

aiohttp rather than httpx: on these 2-core machines httpx 0.28 burns 9–27 ms of CPU per
request under concurrency (encode/httpx#3215) and ran 10× slower in our measurements.

Every reply is untrusted: bodies are read up to a cap, JSON is parsed with a depth limit, and
a reply of any shape becomes a `Reply` (unreadable ones carry an invalid category) rather than
an exception, because a paid reply must be journaled whatever it looks like.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from flipbench.providers.base import Reply
from flipbench.providers.failures import Failure, classify
from flipbench.safety import clean_json, mask_secrets, secret_values, storable

# Response headers worth keeping with each reply (never request headers: they hold the key).
KEPT_HEADERS = ("x-generation-id", "x-openrouter-cache-status", "retry-after", "x-request-id")
# A body larger than this is not read further (the reply is journaled as `too_large`). Generous:
# a local model's whole-vocabulary logprobs run to a few MB.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Content (and reasoning) longer than this is cut before it is parsed or stored; the cut is
# recorded with the sample. No answer of any experiment needs more.
MAX_CONTENT_CHARS = 100_000
# Deeper JSON is refused: no legitimate reply nests more than a handful of levels, and deep
# nesting is how a hostile body exhausts the recursion of every later reader.
MAX_JSON_DEPTH = 64
#: Invalid categories of replies that arrived but cannot be read (stored with the sample).
MALFORMED = "malformed"
TOO_LARGE = "too_large"


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

    def failure(self) -> Failure | None:
        if self.body_cut_at is not None and (self.status is None or self.status < 300):
            return None  # a paid reply too large to read: journaled as `too_large`, not retried
        return classify(
            status=self.status, data=self.data, text=self.text, headers=self.headers,
            error=self.error, service=self.service,
        )  # fmt: skip


def _split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without `user:password@`, and a basic-auth header for them (None if none).

    Credentials never stay in a URL that may be printed, journaled or put in an error.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    auth = aiohttp.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    return bare, auth.encode()


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body up to `limit` bytes, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


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


class ChatClient:
    """POSTs chat-completion bodies; never raises for HTTP or wire failures."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 120.0,
        max_connections: int = 64,
        service: str = "the server",
        max_body_bytes: int = MAX_BODY_BYTES,
        trusted: bool = False,
    ) -> None:
        self.service = service
        # Only a server this process started itself (the embedded model) is trusted: its
        # replies skip the credential scan, which on a whole-vocabulary logprobs reply costs
        # more than the request. Text is still made storable.
        self.trusted = trusted
        self.max_body_bytes = max_body_bytes
        base_url, basic = _split_credentials(base_url)
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        elif basic is not None:  # user:password@ in the URL, and no key: HTTP basic auth
            self._headers["Authorization"] = basic
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, body: dict[str, Any]) -> Exchange:
        """One round trip; failures come back inside the Exchange."""
        assert self._session is not None, "ChatClient.start() was not called"
        started = time.perf_counter()
        try:
            async with self._session.post(self.url, json=body, headers=self._headers) as resp:
                raw, cut = await _read_capped(resp, self.max_body_bytes)
                status = resp.status
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Exchange(
                body, None, {}, None, None, exc, time.perf_counter() - started,
                service=self.service,
            )  # fmt: skip
        text = raw.decode("utf-8", errors="replace")
        data = None if cut else parse_json(text)
        return Exchange(
            body, status, headers, text, data, None, time.perf_counter() - started,
            service=self.service, body_cut_at=self.max_body_bytes if cut else None,
            trusted=self.trusted,
        )  # fmt: skip

    async def get_json(self, path: str) -> Any:
        """GET `<base>/<path>` as JSON, or None on any failure (catalogue lookups are optional)."""
        assert self._session is not None, "ChatClient.start() was not called"
        headers = {k: v for k, v in self._headers.items() if k != "Content-Type"}
        try:
            async with self._session.get(f"{self.base_url}/{path}", headers=headers) as resp:
                if resp.status != 200:
                    return None
                raw, cut = await _read_capped(resp, self.max_body_bytes)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None
        return None if cut else parse_json(raw.decode("utf-8", errors="replace"))

    async def chat(self, body: dict[str, Any]) -> Reply:
        """One request read into a Reply (no retries: callers that want them wrap this)."""
        exchange = await self.post(body)
        return to_reply(exchange, exchange.failure())


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
    _cut_content_in(data, meta)
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


def _cut_content_in(data: dict[str, Any], meta: dict[str, Any]) -> None:
    """Cut over-long message text in the stored response too, so a huge reply is stored capped."""
    if "truncated" not in meta:
        return
    for choice in data.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            for name in ("content", "reasoning"):
                if isinstance(message.get(name), str) and len(message[name]) > MAX_CONTENT_CHARS:
                    message[name] = message[name][:MAX_CONTENT_CHARS]


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
    content = first_choice(data).get("logprobs")
    entries = content.get("content") if isinstance(content, dict) else None
    first = entries[0] if isinstance(entries, list) and entries else None
    candidates = first.get("top_logprobs") if isinstance(first, dict) else None
    for cand in candidates if isinstance(candidates, list) else []:
        if not isinstance(cand, dict):
            continue
        text = str(cand.get("token", "")).strip()
        match = _answer_for(text, found, folded)
        logprob = cand.get("logprob")
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
