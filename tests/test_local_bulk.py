"""The local backend's bulk sampling request shape, against a scripted llama.cpp stand-in on
loopback: one-token answer sets restricted with `logit_bias` and `max_tokens` 1, `n`
completions per request split into one reply per choice; other answer sets keep the grammar."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from flipbench.providers.base import Reply, SampleSettings
from flipbench.providers.local import ANSWER_BIAS, LocalBackend
from flipbench.providers.openai_compat import ChatClient

TOKENS = {"0": [15], "1": [16], "heads": [71, 72], "tails": [73]}
MESSAGES = [{"role": "user", "content": "Flip."}]


async def _exchange(settings: SampleSettings, count: int, choices: int | None = None) -> Any:
    """(request bodies, replies) of one `sample_many` call; the server returns `choices`
    choices (default: as many as asked)."""
    bodies: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        bodies.append(body)
        k = body.get("n", 1) if choices is None else choices
        listed = [{"index": i, "message": {"role": "assistant", "content": str(i % 2)},
                   "finish_reason": "length"} for i in range(k)]  # fmt: skip
        return web.json_response({"choices": listed, "usage": {"completion_tokens": k}})

    async def tokenize(request: web.Request) -> web.Response:
        return web.json_response({"tokens": TOKENS[(await request.json())["content"]]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/tokenize", tokenize)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    backend = LocalBackend("local/smollm2")
    backend._client = ChatClient(f"http://127.0.0.1:{port}/v1", trusted=True)
    backend._native = ChatClient(f"http://127.0.0.1:{port}", trusted=True)
    await backend._client.start()
    await backend._native.start()
    try:
        replies: list[Reply] = await backend.sample_many(MESSAGES, settings, count)
    finally:
        await backend.close()
        await runner.cleanup()
    return bodies, replies


def test_one_token_answers_are_restricted_with_logit_bias_and_n_completions() -> None:
    settings = SampleSettings(1.0, 16, ("0", "1"), seed=5)
    bodies, replies = asyncio.run(_exchange(settings, 4))
    (body,) = bodies
    assert body["n"] == 4 and body["max_tokens"] == 1 and "grammar" not in body
    assert body["logit_bias"] == [[15, ANSWER_BIAS], [16, ANSWER_BIAS]]
    assert (body["top_k"], body["top_p"], body["min_p"], body["seed"]) == (0, 1.0, 0.0, 5)
    assert [r.content for r in replies] == ["0", "1", "0", "1"]
    assert [r.meta["choice"] for r in replies] == [[i, 4] for i in range(4)]
    for i, reply in enumerate(replies):  # each row stores its own choice only
        assert reply.response["choices"] == [body_choice(i)]


def body_choice(i: int) -> dict[str, Any]:
    return {"index": i, "message": {"role": "assistant", "content": str(i % 2)},
            "finish_reason": "length"}  # fmt: skip


def test_the_bias_grows_with_the_temperature() -> None:
    bodies, _ = asyncio.run(_exchange(SampleSettings(3.0, 16, ("0", "1")), 2))
    assert bodies[0]["logit_bias"][0][1] == 3 * ANSWER_BIAS


def test_answers_of_several_tokens_keep_the_grammar_and_one_request_asks_once() -> None:
    bodies, replies = asyncio.run(_exchange(SampleSettings(1.0, 16, ("heads", "tails")), 3))
    (body,) = bodies
    assert body["grammar"] == 'root ::= answer\nanswer ::= "heads" | "tails"'
    assert "logit_bias" not in body and body["max_tokens"] == 16 and body["n"] == 3
    assert len(replies) == 3
    single, _ = asyncio.run(_exchange(SampleSettings(1.0, 16, None), 1))
    assert "n" not in single[0] and "grammar" not in single[0] and "logit_bias" not in single[0]


def test_a_choice_the_server_did_not_return_is_an_unreadable_reply() -> None:
    _, replies = asyncio.run(_exchange(SampleSettings(1.0, 16, ("0", "1")), 3, choices=2))
    assert [r.content for r in replies[:2]] == ["0", "1"]
    assert replies[2].ok and replies[2].invalid_category == "malformed"
