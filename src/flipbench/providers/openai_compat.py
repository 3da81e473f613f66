"""A minimal OpenAI-compatible chat-completions client on aiohttp.

aiohttp rather than httpx: on these 2-core machines httpx 0.28 burns 9–27 ms of CPU per
request under concurrency (encode/httpx#3215) and ran 10× slower in our measurements.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from flipbench.providers.base import Reply


class ChatClient:
    """POSTs chat-completion bodies and turns every outcome, failures included, into a Reply."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 120.0,
        max_connections: int = 64,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
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

    async def chat(self, body: dict[str, Any]) -> Reply:
        """One request; never raises for HTTP or wire failures — they come back as `ok=False`."""
        assert self._session is not None, "ChatClient.start() was not called"
        started = time.perf_counter()
        try:
            async with self._session.post(self.url, json=body, headers=self._headers) as resp:
                text = await resp.text()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Reply(
                request=body,
                response=None,
                ok=False,
                latency_s=time.perf_counter() - started,
                error=f"{type(exc).__name__}: {exc}",
            )
        latency = time.perf_counter() - started
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return Reply(body, text, False, status, latency_s=latency, error="malformed JSON")
        return reply_from_json(body, data, status, latency)


def reply_from_json(body: dict[str, Any], data: Any, status: int, latency: float) -> Reply:
    """Read content and finish reason from a chat-completions body, or say why it has none."""
    error = _error_message(data, status)
    if error is not None:
        return Reply(body, data, False, status, latency_s=latency, error=error)
    choice = data["choices"][0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    cost = usage.get("cost")
    return Reply(
        request=body,
        response=data,
        ok=True,
        http_status=status,
        content=message.get("content"),
        finish_reason=choice.get("finish_reason"),
        latency_s=latency,
        cost=float(cost) if isinstance(cost, int | float) else None,
    )


def _error_message(data: Any, status: int) -> str | None:
    if not isinstance(data, dict):
        return f"HTTP {status}: response is not a JSON object"
    if "error" in data:
        err = data["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        return f"HTTP {status}: {message}"
    if status >= 400:
        return f"HTTP {status}"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"HTTP {status}: reply has no choices"
    return None


def answer_logprobs(data: Any, answers: Sequence[str]) -> tuple[dict[str, list[float]], set[str]]:
    """Log-probabilities of the first-token candidates whose text (stripped) is an answer.

    Returns the matches and the answers that did not appear among the returned candidates.
    """
    found: dict[str, list[float]] = {a: [] for a in answers}
    content = data["choices"][0].get("logprobs", {}) or {}
    entries = content.get("content") or []
    if entries:
        for cand in entries[0].get("top_logprobs") or []:
            text = str(cand.get("token", "")).strip()
            if text in found:
                found[text].append(float(cand["logprob"]))
    missing = {a for a, lps in found.items() if not lps}
    return found, missing
