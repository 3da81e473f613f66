"""An OpenAI-compatible client on aiohttp: chat completions (`messages`) and text completions
(`prompt`, for raw prompts), each reply read into a `Reply` by `replies`.

aiohttp rather than httpx: on these 2-core machines httpx 0.28 burns 9–27 ms of CPU per
request under concurrency (encode/httpx#3215) and ran 10× slower in our measurements.

Every reply is untrusted: bodies are read up to a cap, JSON is parsed with a depth limit, and
a reply of any shape becomes a `Reply` (unreadable ones carry an invalid category) rather than
an exception, because a paid reply must be journaled whatever it looks like. The names of
`replies` are re-exported here for the modules that import them from this one.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import orjson

from flipbench.providers.base import Reply
from flipbench.providers.replies import (
    CHAT,
    COMPLETIONS,
    KEPT_HEADERS,
    MALFORMED,
    MAX_CONTENT_CHARS,
    MAX_JSON_DEPTH,
    TOO_LARGE,
    Exchange,
    answer_logprobs,
    first_choice,
    json_depth,
    parse_json,
    read_exact,
    reported_cost,
    to_reply,
)

__all__ = [
    "CHAT", "COMPLETIONS", "KEPT_HEADERS", "MALFORMED", "MAX_BODY_BYTES", "MAX_CONTENT_CHARS",
    "MAX_JSON_DEPTH", "TOO_LARGE", "ChatClient", "Exchange", "answer_logprobs", "first_choice",
    "json_depth", "parse_json", "read_exact", "reported_cost", "to_reply",
]  # fmt: skip

# A body larger than this is not read further (the reply is journaled as `too_large`). Generous:
# a local model's whole-vocabulary logprobs run to a few MB.
MAX_BODY_BYTES = 64 * 1024 * 1024


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


class ChatClient:
    """POSTs chat- and text-completion bodies; never raises for HTTP or wire failures."""

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

    def _auth(self, api_key: str | None) -> dict[str, str]:
        """The headers of one request: `api_key` (one of several keys) replaces the default."""
        if api_key is None:
            return self._headers
        return {**self._headers, "Authorization": f"Bearer {api_key}"}

    async def post(
        self,
        body: dict[str, Any],
        endpoint: str = CHAT,
        *,
        bulk: bool = False,
        api_key: str | None = None,
    ) -> Exchange:
        """One round trip to `<base>/<endpoint>`; failures come back inside the Exchange.

        `bulk` (for a trusted server's large, flat replies: a whole-vocabulary list is 4.6 MB)
        parses with orjson and keeps no text: 0.09 s against 0.6 s for the checked path.
        `api_key` sends this request with that key (a key ring spreads requests over keys)."""
        assert self._session is not None, "ChatClient.start() was not called"
        url = f"{self.base_url}/{endpoint}"
        headers_out = self._auth(api_key)
        started = time.perf_counter()
        try:
            async with self._session.post(url, json=body, headers=headers_out) as resp:
                raw, cut = await _read_capped(resp, self.max_body_bytes)
                status = resp.status
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Exchange(
                body, None, {}, None, None, exc, time.perf_counter() - started,
                service=self.service, endpoint=endpoint,
            )  # fmt: skip
        if bulk and self.trusted and not cut:
            try:
                bulk_data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bulk_data = None
            return Exchange(
                body, status, headers, None, bulk_data, None, time.perf_counter() - started,
                service=self.service, trusted=True, endpoint=endpoint,
            )  # fmt: skip
        text = raw.decode("utf-8", errors="replace")
        data = None if cut else parse_json(text)
        return Exchange(
            body, status, headers, text, data, None, time.perf_counter() - started,
            service=self.service, body_cut_at=self.max_body_bytes if cut else None,
            trusted=self.trusted, endpoint=endpoint,
        )  # fmt: skip

    async def get_json(self, path: str, *, api_key: str | None = None) -> Any:
        """GET `<base>/<path>` as JSON, or None on any failure (catalogue lookups are optional)."""
        assert self._session is not None, "ChatClient.start() was not called"
        headers = {k: v for k, v in self._auth(api_key).items() if k != "Content-Type"}
        try:
            async with self._session.get(f"{self.base_url}/{path}", headers=headers) as resp:
                if resp.status != 200:
                    return None
                raw, cut = await _read_capped(resp, self.max_body_bytes)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None
        return None if cut else parse_json(raw.decode("utf-8", errors="replace"))

    async def chat(self, body: dict[str, Any]) -> Reply:
        """One chat request read into a Reply (no retries: callers that want them wrap this)."""
        return await self.reply(body, CHAT)

    async def complete(self, body: dict[str, Any]) -> Reply:
        """One text-completion request (`prompt`, no chat template) read into a Reply."""
        return await self.reply(body, COMPLETIONS)

    async def reply(self, body: dict[str, Any], endpoint: str) -> Reply:
        exchange = await self.post(body, endpoint)
        return to_reply(exchange, exchange.failure())

    async def replies(self, body: dict[str, Any], endpoint: str, count: int) -> list[Reply]:
        """One request for `count` completions (`n`), read as one Reply per choice (each
        stores the response with its own choice only). A failed or unreadable request is the
        same failure for every completion it held; a choice the server did not return is an
        unreadable reply of its own."""
        exchange = await self.post(body, endpoint)
        failure = exchange.failure()
        data = exchange.data
        choices = data.get("choices") if isinstance(data, dict) else None
        if failure is not None or not isinstance(data, dict) or not isinstance(choices, list):
            first = to_reply(exchange, failure)
            return [first, *(copy.copy(first) for _ in range(count - 1))]
        out = []
        for i in range(count):
            part = {**data, "choices": choices[i : i + 1]}
            one = dataclasses.replace(exchange, data=part if i < len(choices) else None)
            reply = to_reply(one, None)
            reply.meta["choice"] = [i, count]
            out.append(reply)
        return out
