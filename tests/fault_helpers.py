"""Talking to the fault server in tests: a server on loopback, one POST, one reply."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from flipbench.testing.fault_server import FaultConfig, FaultServer

BODY: dict[str, Any] = {
    "model": "acme/coin-1",
    "messages": [{"role": "user", "content": "Reply with 0 or 1."}],
    "temperature": 1.0,
    "max_tokens": 2,
}


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[FaultServer, str]]:
    server = FaultServer(FaultConfig(**options))
    url = await server.start()
    try:
        yield server, url
    finally:
        await server.stop()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(url + "/chat/completions", json=body or BODY, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


def one(body: dict[str, Any] | None = None, **options: Any) -> tuple[int, dict[str, str], bytes]:
    async def go() -> tuple[int, dict[str, str], bytes]:
        async with serving(**options) as (_, url), aiohttp.ClientSession() as session:
            return await post(session, url, body)

    return asyncio.run(go())


def within_binomial(k: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(k - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def outcome(status: int, raw: bytes) -> str:
    """What a client can see of one reply, for comparing outcome sequences."""
    try:
        data = json.loads(raw)
    except ValueError:
        return "malformed"
    if "error" in data:
        return f"{status}:{data['error']['code']}"
    return "ok:" + str(data["choices"][0]["message"]["content"])
