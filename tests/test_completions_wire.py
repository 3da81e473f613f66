"""Prefill and raw prompts on the wire: request shapes and reply reading over loopback HTTP.

A small aiohttp server on 127.0.0.1 records every body it is sent and answers with scripted
chat or text completions, in the shapes llama.cpp, vLLM/OpenAI and OpenRouter use.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flipbench.errors import FlipbenchError
from flipbench.parse import NO_LOGPROBS
from flipbench.progress import SilentReporter
from flipbench.providers.base import SampleSettings
from flipbench.providers.local import LocalBackend
from flipbench.providers.openai_api import (
    API_TOP_LOGPROBS,
    OpenAICompatibleBackend,
    OpenRouterBackend,
)
from flipbench.providers.openai_compat import (
    COMPLETIONS,
    MALFORMED,
    MAX_CONTENT_CHARS,
    TOO_LARGE,
    ChatClient,
    Exchange,
    parse_json,
    to_reply,
)
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ExperimentDefinition, ResolvedExperiment
from flipbench.tasks.protocols import AssistantPrefill, RawText

DUMMY_KEY = "sk-or-v1-dummy-wire-0123456789abcdef"
Answer = Callable[[str, dict[str, Any]], Any]  # (path, body) -> JSON, or bytes sent as is


class FakeServer:
    """Records (path, body) of every POST and answers with `answer(path, body)`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.base_url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body))
        reply = self.answer(request.path, body)
        if isinstance(reply, bytes):
            return web.Response(body=reply, content_type="application/json")
        return web.json_response(reply)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeServer]:
        app = web.Application()
        for path in ("/v1/chat/completions", "/v1/completions"):
            app.router.add_post(path, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        try:
            yield self
        finally:
            await runner.cleanup()


def text_completion(text: Any, logprobs: Any = None, cost: float | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    if cost is not None:
        usage["cost"] = cost
    choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": "length"}
    return {"object": "text_completion", "choices": [choice], "usage": usage}


def chat_completion(content: str, logprobs: Any = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6, "cost": 0.001}
    choice = {"message": message, "logprobs": logprobs, "finish_reason": "stop"}
    return {"choices": [choice], "usage": usage}


def chat_logprobs(candidates: dict[str, float]) -> dict[str, Any]:
    """llama.cpp's shape, for chat and text completions alike."""
    top = [{"token": t, "logprob": lp} for t, lp in candidates.items()]
    return {"content": [{"token": next(iter(candidates)), "logprob": -0.1, "top_logprobs": top}]}


def legacy_logprobs(candidates: dict[str, float]) -> dict[str, Any]:
    """OpenAI's (and vLLM's) text completions: one object of token → logprob per position."""
    first = next(iter(candidates))
    return {"tokens": [first], "token_logprobs": [candidates[first]], "top_logprobs": [candidates]}


def _api_backend(monkeypatch: pytest.MonkeyPatch, url: str) -> OpenAICompatibleBackend:
    monkeypatch.setenv("FAKE_BASE_URL", url)
    return OpenAICompatibleBackend("openai-api/fake/base-model")


def test_api_raw_prompt_goes_to_text_completions(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        server = FakeServer(lambda path, body: text_completion(" 1 0", cost=0.002))
        async with server.running():
            backend = _api_backend(monkeypatch, server.base_url)
            await backend.start(concurrency=1, exact=False)
            try:
                reply = await backend.sample_raw("Flips: 1 0", SampleSettings(1.0, 8, seed=5))
            finally:
                await backend.close()
        assert server.requests == [
            ("/v1/completions", {"model": "base-model", "prompt": "Flips: 1 0",
                                 "temperature": 1.0, "max_tokens": 8, "seed": 5}),
        ]  # fmt: skip
        assert reply.ok and reply.content == " 1 0" and reply.invalid_category is None
        assert reply.cost == 0.002 and backend.spent == 0.002

    asyncio.run(main())


@pytest.mark.parametrize("shape", ["legacy", "llama.cpp", "none"])
def test_api_raw_exact_reads_both_logprob_shapes(
    monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    candidates = {" 1": math.log(0.6), " 0": math.log(0.3), " the": math.log(0.05)}
    logprobs = {"legacy": legacy_logprobs, "llama.cpp": chat_logprobs}.get(shape)

    async def main() -> None:
        answer = text_completion(" 1", logprobs(candidates) if logprobs else None)
        server = FakeServer(lambda path, body: answer)
        async with server.running():
            backend = _api_backend(monkeypatch, server.base_url)
            await backend.start(concurrency=1, exact=True)
            try:
                reply = await backend.distribution_raw("Flips: 1 0", ["0", "1"])
            finally:
                await backend.close()
        path, body = server.requests[0]
        assert path == "/v1/completions" and "messages" not in body
        assert (body["logprobs"], body["max_tokens"], body["temperature"]) == (
            API_TOP_LOGPROBS, 1, 0.0,
        )  # fmt: skip
        if shape == "none":
            assert reply.invalid_category == NO_LOGPROBS
            return
        assert reply.answer_logprobs == {"0": [math.log(0.3)], "1": [math.log(0.6)]}
        assert reply.meta["top_logprobs"] == API_TOP_LOGPROBS

    asyncio.run(main())


def _flip(protocol: Any, **changes: Any) -> ResolvedExperiment:
    data = get_experiment("single-flip").model_dump(exclude={"protocol", "followup"})
    definition = ExperimentDefinition.model_validate({**data, "protocol": protocol, **changes})
    return definition.resolve(p_values=["30"], n=2)


def _run(
    tmp_path: Path, experiment: ResolvedExperiment, backend: Any, mode: str = "sample"
) -> list[dict[str, Any]]:
    journal = Journal(tmp_path / "j.db")
    journal.create_run(
        run_id="r", experiment=experiment.name, model=backend.model, mode=mode, config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip

    async def main() -> None:
        await backend.start(concurrency=1, exact=mode == "exact")
        try:
            settings = RunSettings(mode, 1, False, 3.0, None)
            await Runner(journal, "r", experiment, backend, settings, SilentReporter()).run()
        finally:
            await backend.close()

    asyncio.run(main())
    return [dict(r) for r in journal.samples("r")]


def test_openrouter_sends_a_prefill_as_the_last_assistant_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    replies = iter(["1", "I flipped: 0"])  # a bare continuation, and one repeating the prefill
    server = FakeServer(lambda path, body: chat_completion(next(replies)))
    experiment = _flip(AssistantPrefill(prefill="I flipped:"))
    monkeypatch.setenv("OPENROUTER_API_KEY", DUMMY_KEY)

    async def main() -> list[dict[str, Any]]:
        async with server.running():
            monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
            backend = OpenRouterBackend("openrouter/fake/model")
            return await asyncio.to_thread(_run, tmp_path, experiment, backend)

    rows = asyncio.run(main())
    assert [r["answer"] for r in rows] == ["1", "0"]
    for path, body in server.requests:
        assert path == "/v1/chat/completions"
        assert body["messages"] == list(experiment.conditions()[0].messages)
        assert body["messages"][-1] == {"role": "assistant", "content": "I flipped:"}


def test_openrouter_refuses_a_raw_prompt_before_any_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens
    with pytest.raises(FlipbenchError, match="raw prompt needs a completions endpoint"):
        _run(tmp_path, _flip(RawText()), OpenRouterBackend("openrouter/fake/model"))
    assert list(Journal(tmp_path / "j.db", create=False).samples("r")) == []


def test_a_long_raw_reply_is_stored_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    long_text = " 1" + " and so on" * 300
    experiment = _flip(RawText(), prompt="Flips at {p}%:")

    async def main() -> list[dict[str, Any]]:
        server = FakeServer(lambda path, body: text_completion(long_text))
        async with server.running():
            backend = _api_backend(monkeypatch, server.base_url)
            return await asyncio.to_thread(_run, tmp_path, experiment, backend)

    rows = asyncio.run(main())
    assert [r["answer"] for r in rows] == ["1", "1"]
    for row in rows:
        assert row["content"] == long_text
        assert json.loads(row["request_json"])["prompt"] == "Flips at 30%:"
        stored = json.loads(row["response_json"])["choices"][0]["text"]
        assert stored == "[flipbench: stored in the content column]"


def _local(url: str, n_vocab: int | None = None) -> LocalBackend:
    """The local backend's request code against a fake server (no llama.cpp started)."""
    backend = LocalBackend("local/smollm2")
    backend._client = ChatClient(url, trusted=True)
    backend._n_vocab = n_vocab
    return backend


def test_local_raw_and_prefill_request_shapes() -> None:
    narrow = {" heads": math.log(0.5), " the": math.log(0.2)}
    wide = {**narrow, " tails": math.log(0.1)}

    def answer(path: str, body: dict[str, Any]) -> Any:
        if path.endswith("/chat/completions"):
            return chat_completion("The coin landed on heads", chat_logprobs(wide))
        if body.get("max_tokens") == 1:  # exact: "tails" only in the whole vocabulary
            top = wide if body["logprobs"] == 5000 else narrow
            return text_completion(" heads", chat_logprobs(top))
        return text_completion(" heads")

    async def main() -> None:
        server = FakeServer(answer)
        async with server.running():
            backend = _local(server.base_url, n_vocab=5000)
            backend.first_token = True  # the first-token reading's request shapes
            assert backend._client is not None
            await backend._client.start()
            try:
                settings = SampleSettings(0.7, 4, ("heads", "tails"), seed=3, continuation=True)
                sampled = await backend.sample_raw("The coin landed on", settings)
                exact = await backend.distribution_raw("The coin landed on", ["heads", "tails"])
                prefill = [{"role": "user", "content": "Flip."},
                           {"role": "assistant", "content": "The coin landed on"}]  # fmt: skip
                chat = await backend.distribution(prefill, ["heads", "tails"])
            finally:
                await backend.close()
        paths = [p for p, _ in server.requests]
        assert paths == ["/v1/completions"] * 3 + ["/v1/chat/completions"]
        body = server.requests[0][1]
        assert body["prompt"] == "The coin landed on" and "messages" not in body
        assert (body["top_k"], body["top_p"], body["min_p"], body["seed"]) == (0, 1.0, 0.0, 3)
        assert body["grammar"] == 'root ::= " "? answer\nanswer ::= "heads" | "tails"'
        assert sampled.content == " heads"
        first, widened = server.requests[1][1], server.requests[2][1]
        assert (first["logprobs"], widened["logprobs"]) == (1000, 5000)
        assert first["cache_prompt"] is False and first["temperature"] == 0.0
        assert exact.answer_logprobs == {"heads": [math.log(0.5)], "tails": [math.log(0.1)]}
        assert exact.meta["top_logprobs"] == 5000
        chat_body = server.requests[3][1]
        assert chat_body["messages"][-1]["role"] == "assistant" and chat_body["logprobs"] is True
        assert chat_body["top_logprobs"] == 1000
        assert chat.answer_logprobs == {"heads": [math.log(0.5)], "tails": [math.log(0.1)]}

    asyncio.run(main())


def test_text_completion_bodies_keep_the_size_cap() -> None:
    async def main() -> None:
        big = json.dumps(text_completion("1" * 5000)).encode()
        server = FakeServer(lambda path, body: big)
        async with server.running():
            client = ChatClient(server.base_url, max_body_bytes=1000)
            await client.start()
            try:
                reply = await client.complete({"prompt": "x"})
            finally:
                await client.close()
        assert reply.ok and reply.invalid_category == TOO_LARGE
        assert reply.meta["body_cut_at_bytes"] == 1000

    asyncio.run(main())


def _read_text(body: Any) -> Any:
    text = json.dumps(body)
    ex = Exchange({"prompt": "x"}, 200, {}, text, parse_json(text), None, 0.0,
                  endpoint=COMPLETIONS)  # fmt: skip
    return to_reply(ex, ex.failure())


@pytest.mark.parametrize(
    "body",
    [{"choices": [{"text": 1}]}, {"choices": [{"finish_reason": "stop"}]}, {"choices": [None]},
     {"choices": [{"message": {"content": "1"}}]}],
    ids=["text-int", "no-text", "choice-null", "chat-shape"],
)  # fmt: skip
def test_unreadable_text_completions_are_malformed(body: Any) -> None:
    reply = _read_text(body)
    assert reply.ok and reply.invalid_category == MALFORMED


def test_a_huge_text_is_cut_and_stored_capped_and_escapes_are_visible() -> None:
    reply = _read_text(text_completion("1 \u001b[31m" + "x" * (MAX_CONTENT_CHARS * 2)))
    assert reply.content is not None and len(reply.content) == MAX_CONTENT_CHARS
    assert reply.content.startswith("1 \\x1b[31m")
    assert reply.meta["truncated"]["content"] > MAX_CONTENT_CHARS
    assert len(reply.response["choices"][0]["text"]) == MAX_CONTENT_CHARS
