"""An OpenAI-compatible chat-completions client on aiohttp, and the reading of its replies.

aiohttp rather than httpx: on these 2-core machines httpx 0.28 burns 9–27 ms of CPU per
request under concurrency (encode/httpx#3215) and ran 10× slower in our measurements.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from flipbench.providers.base import Reply
from flipbench.providers.failures import Failure, classify

# Response headers worth keeping with each reply (never request headers: they hold the key).
KEPT_HEADERS = ("x-generation-id", "x-openrouter-cache-status", "retry-after", "x-request-id")


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

    def failure(self) -> Failure | None:
        return classify(
            status=self.status, data=self.data, text=self.text, headers=self.headers,
            error=self.error,
        )  # fmt: skip


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
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
                text = await resp.text(errors="replace")
                status = resp.status
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Exchange(body, None, {}, None, None, exc, time.perf_counter() - started)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        return Exchange(body, status, headers, text, data, None, time.perf_counter() - started)

    async def get_json(self, path: str) -> Any:
        """GET `<base>/<path>` as JSON, or None on any failure (catalogue lookups are optional)."""
        assert self._session is not None, "ChatClient.start() was not called"
        headers = {k: v for k, v in self._headers.items() if k != "Content-Type"}
        try:
            async with self._session.get(f"{self.base_url}/{path}", headers=headers) as resp:
                if resp.status != 200:
                    return None
                return json.loads(await resp.text(errors="replace"))
        except (TimeoutError, aiohttp.ClientError, OSError, json.JSONDecodeError):
            return None

    async def chat(self, body: dict[str, Any]) -> Reply:
        """One request read into a Reply (no retries: callers that want them wrap this)."""
        exchange = await self.post(body)
        return to_reply(exchange, exchange.failure())


def to_reply(ex: Exchange, failure: Failure | None) -> Reply:
    """Content, finish reason, cost and provenance of a reply, or the reason it has none."""
    response = ex.data if ex.data is not None else ex.text
    kept = {k: ex.headers[k] for k in KEPT_HEADERS if k in ex.headers}
    if failure is not None:
        meta: dict[str, Any] = {"failure": failure.reason}
        if kept:
            meta["headers"] = kept
        return Reply(
            request=ex.request, response=response, ok=False, http_status=ex.status,
            latency_s=ex.latency_s, error=failure.message, meta=meta,
        )  # fmt: skip
    data = ex.data
    choice = data["choices"][0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    cost = usage.get("cost")
    kept_meta: dict[str, Any] = {
        k: v
        for k, v in {
            "generation_id": data.get("id"),
            "provider": data.get("provider"),
            "native_finish_reason": choice.get("native_finish_reason"),
            "usage": usage or None,
            "headers": kept or None,
            "reasoning": message.get("reasoning"),
        }.items()
        if v
    }
    return Reply(
        request=ex.request,
        response=data,
        ok=True,
        http_status=ex.status,
        content=message.get("content"),
        finish_reason=choice.get("finish_reason"),
        latency_s=ex.latency_s,
        cost=float(cost) if isinstance(cost, int | float) else None,
        meta=kept_meta,
    )


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
    content = data["choices"][0].get("logprobs") or {}
    entries = content.get("content") or []
    if entries:
        for cand in entries[0].get("top_logprobs") or []:
            text = str(cand.get("token", "")).strip()
            match = _answer_for(text, found, folded)
            if match is not None:
                found[match].append(float(cand["logprob"]))
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
