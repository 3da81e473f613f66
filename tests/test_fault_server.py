"""The scripted OpenRouter stand-in must reproduce the wire format exactly, faults included.

Every other network test trusts this server to look like OpenRouter, so its replies are checked
byte-for-byte here, over real loopback HTTP with the same client library flipbench uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flipbench.testing.fault_server import (
    DEEP_JSON_DEPTH,
    FAULT_KINDS,
    HOSTILE_SHAPES,
    FaultConfig,
    FaultServer,
    _parser,
    running_in_thread,
)

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


def test_success_reply_has_openrouter_shape() -> None:
    async def go() -> None:
        async with serving(p_one=0.7, seed=3) as (server, url), aiohttp.ClientSession() as s:
            status, headers, raw = await post(s, url)
            assert status == 200 and headers["Content-Type"].startswith("application/json")
            data = json.loads(raw)
            assert set(data) == {"id", "provider", "model", "object", "created", "choices", "usage"}
            assert data["id"].startswith("gen-") and headers["X-Generation-Id"] == data["id"]
            assert data["provider"] == "FaultyProvider" and data["model"] == "acme/coin-1"
            assert data["object"] == "chat.completion" and isinstance(data["created"], int)
            (choice,) = data["choices"]
            assert "logprobs" not in choice
            assert choice["index"] == 0
            assert choice["finish_reason"] == choice["native_finish_reason"] == "stop"
            assert choice["message"]["role"] == "assistant"
            assert choice["message"]["content"] in {"0", "1"}
            assert choice["message"]["reasoning"] is None
            assert data["usage"] == {
                "prompt_tokens": 40,
                "completion_tokens": 1,
                "total_tokens": 41,
                "cost": 0.00001,
                "completion_tokens_details": {"reasoning_tokens": 0},
            }
            # Logprobs only on request; top_logprobs truncated to min(n, 2).
            for top, expected in ((5, 2), (1, 1), (0, 0)):
                body = {**BODY, "logprobs": True, "top_logprobs": top}
                choice = json.loads((await post(s, url, body))[2])["choices"][0]
                (entry,) = choice["logprobs"]["content"]
                answer = choice["message"]["content"]
                assert entry["token"] == answer
                assert entry["logprob"] == pytest.approx(math.log(0.7 if answer == "1" else 0.3))
                alternatives = [
                    {"token": "1", "logprob": pytest.approx(math.log(0.7))},
                    {"token": "0", "logprob": pytest.approx(math.log(0.3))},
                ]
                assert entry["top_logprobs"] == alternatives[:expected]
            # Model defaults, other paths and the catalogue.
            no_model = {k: v for k, v in BODY.items() if k != "model"}
            root = url.removesuffix("/api/v1")
            for path in ("/v1", ""):
                data = json.loads((await post(s, root + path, no_model))[2])
                assert data["model"] == "fault/model"
            async with s.get(url + "/models") as r:
                (model,) = (await r.json())["data"]
            assert model["id"] == "fault/model" and model["context_length"] == 8192
            assert model["pricing"] == {"prompt": "0.0000001", "completion": "0.0000002"}
            assert "logprobs" in model["supported_parameters"]
            assert server.counts["requests"] == 6 and server.counts["ok"] == 6

    asyncio.run(go())


ZERO_USAGE = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "cost": 0.0,
    "completion_tokens_details": {"reasoning_tokens": 0},
}


@pytest.mark.parametrize(
    ("kind", "options", "status", "error"),
    [
        ("rate_limit", {}, 429, {"code": 429, "message": "Rate limit exceeded", "metadata": {}}),
        ("error_200", {}, 200, {"code": 502, "message": "Upstream provider error"}),
        ("server_error", {}, 502, {"code": 502, "message": "Upstream provider error"}),
        ("server_error", {"server_error_status": 500}, 500, {"code": 500}),
        ("server_error", {"server_error_status": 503}, 503, {"code": 503}),
        (
            "in_flight_402",
            {"retry_after_s": 2.5},
            402,
            {
                "code": 402,
                "message": "In-flight budget exhausted",
                "metadata": {"limit_source": "in_flight", "reason": "in_flight_budget_exhausted"},
            },
        ),
    ],
)
def test_error_faults(
    kind: str, options: dict[str, Any], status: int, error: dict[str, Any]
) -> None:
    got_status, headers, raw = one(**{kind: 1.0, **options})
    assert got_status == status
    data = json.loads(raw)
    assert set(data) == {"error"} and data["error"].items() >= error.items()
    assert isinstance(data["error"]["message"], str)
    if kind in {"rate_limit", "in_flight_402"}:
        assert headers["Retry-After"] == ("2.5" if kind == "in_flight_402" else "1")
    else:
        assert "Retry-After" not in headers


def test_malformed_is_truncated_json() -> None:
    status, headers, raw = one(malformed=1.0)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert raw == b'{"choices": ['
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_no_choices_empty_length_and_cache_hit() -> None:
    data = json.loads(one(no_choices=1.0)[2])
    assert data["choices"] == [] and data["id"].startswith("gen-") and "usage" in data

    status, headers, raw = one(empty_length=1.0)
    choice = json.loads(raw)["choices"][0]
    assert status == 200 and "X-OpenRouter-Cache-Status" not in headers
    assert choice["message"] == {
        "role": "assistant",
        "content": "",
        "reasoning": "Let me think about the coin...",
    }
    assert choice["finish_reason"] == choice["native_finish_reason"] == "length"
    assert json.loads(raw)["usage"]["completion_tokens"] == BODY["max_tokens"]

    status, headers, raw = one(cache_hit=1.0, p_one=1.0)
    data = json.loads(raw)
    assert status == 200 and headers["X-OpenRouter-Cache-Status"] == "HIT"
    assert data["choices"][0]["message"]["content"] == "1" and data["usage"] == ZERO_USAGE


@pytest.mark.parametrize(
    ("fatal", "message"),
    [
        ("401", "User not found."),
        ("402", "Insufficient credits"),
        ("404", "No endpoints found for acme/coin-1"),
        ("400", "Invalid request"),
    ],
)
def test_fatal_modes(fatal: str, message: str) -> None:
    status, headers, raw = one(fatal=fatal, rate_limit=1.0)
    error = json.loads(raw)["error"]
    assert status == error["code"] == int(fatal)
    assert error["message"].startswith(message) and "Retry-After" not in headers
    assert "in_flight" not in json.dumps(error)


def test_api_key_is_checked() -> None:
    async def go() -> None:
        async with serving(api_key="sk-good") as (server, url), aiohttp.ClientSession() as s:
            status, _, raw = await post(s, url)
            assert status == 401
            assert json.loads(raw)["error"]["message"] == "No auth credentials found"
            status, _, raw = await post(s, url, headers={"Authorization": "Bearer sk-bad"})
            assert status == 401 and json.loads(raw)["error"]["code"] == 401
            status, _, _ = await post(s, url, headers={"Authorization": "Bearer sk-good"})
            assert status == 200
            assert server.counts == {"requests": 3, "unauthorized": 2, "ok": 1, "billed": 1}

    asyncio.run(go())


async def sequence(n: int, **options: Any) -> tuple[list[str], dict[str, int]]:
    async with serving(**options) as (server, url), aiohttp.ClientSession() as s:
        seen = []
        for _ in range(n):
            status, _, raw = await post(s, url)
            seen.append(outcome(status, raw))
        return seen, server.counts


def test_fault_mix_is_binomial_and_seeded() -> None:
    mix = {"rate_limit": 0.1, "error_200": 0.05, "malformed": 0.01, "p_one": 0.7}
    seen, counts = asyncio.run(sequence(2000, seed=42, **mix))
    tally = Counter(seen)
    assert counts["requests"] == 2000
    assert tally["429:429"] == counts["rate_limit"] and within_binomial(tally["429:429"], 2000, 0.1)
    assert tally["200:502"] == counts["error_200"] and within_binomial(tally["200:502"], 2000, 0.05)
    assert tally["malformed"] == counts["malformed"] and within_binomial(
        tally["malformed"], 2000, 0.01
    )
    assert tally["ok:1"] + tally["ok:0"] == counts["ok"]
    assert within_binomial(tally["ok:1"], counts["ok"], 0.7)

    again, _ = asyncio.run(sequence(300, seed=42, **mix))
    assert again == seen[:300]
    other, _ = asyncio.run(sequence(300, seed=43, **mix))
    assert other != seen[:300]


def test_echo_p_follows_the_prompt() -> None:
    prompt = 'Answer with a coin that returns "1" 30% of the time. Reply 0 or 1.'
    body = {**BODY, "messages": [{"role": "user", "content": prompt}], "logprobs": True}
    body["top_logprobs"] = 2

    async def go() -> list[dict[str, Any]]:
        async with serving(echo_p=True, seed=7) as (_, url), aiohttp.ClientSession() as s:
            return [json.loads((await post(s, url, body))[2]) for _ in range(1000)]

    replies = asyncio.run(go())
    ones = sum(r["choices"][0]["message"]["content"] == "1" for r in replies)
    assert within_binomial(ones, 1000, 0.3)
    top = replies[0]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert top[0]["logprob"] == pytest.approx(math.log(0.3))


def test_hang_times_out_and_stop_does_not_wait() -> None:
    async def go() -> None:
        server = FaultServer(FaultConfig(hang=1.0, hang_s=30.0))
        url = await server.start()
        async with aiohttp.ClientSession() as s:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                async with s.post(
                    url + "/chat/completions", json=BODY, timeout=aiohttp.ClientTimeout(total=0.5)
                ) as r:
                    await r.read()
            assert time.monotonic() - started < 2
            waiting = asyncio.create_task(post(s, url))  # no client timeout at all
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await server.stop()
            status, _, raw = await asyncio.wait_for(waiting, 3)  # woken, not cut off
            assert status == 503 and json.loads(raw)["error"]["code"] == 503
            assert time.monotonic() - started < 3
        assert server.counts["hang"] == 2

    asyncio.run(go())


def test_hanging_requests_do_not_block_others() -> None:
    async def go() -> None:
        async with serving(hang=0.5, hang_s=30.0, seed=1) as (server, url):
            timeout = aiohttp.ClientTimeout(total=1.0)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                results = await asyncio.gather(
                    *(post(s, url) for _ in range(20)), return_exceptions=True
                )
            ok = [r for r in results if isinstance(r, tuple)]
            assert all(r[0] == 200 for r in ok)
            assert len(ok) == server.counts["ok"] > 0
            assert len(results) - len(ok) == server.counts["hang"] > 0

    asyncio.run(go())


def test_running_in_thread_records_requests() -> None:
    with running_in_thread(FaultConfig(record_bodies=True, p_one=1.0)) as server:
        assert server.base_url.startswith("http://127.0.0.1:")

        async def go() -> tuple[int, dict[str, str], bytes]:
            async with aiohttp.ClientSession() as s:
                return await post(s, server.base_url, headers={"X-OpenRouter-Cache": "false"})

        assert asyncio.run(go())[0] == 200
        assert server.bodies == [BODY]
        assert server.headers[0]["X-OpenRouter-Cache"] == "false"
        assert server.counts == {"requests": 1, "ok": 1, "billed": 1}


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="sum"):
        FaultServer(FaultConfig(rate_limit=0.6, hang=0.6))
    with pytest.raises(ValueError, match="fatal"):
        FaultServer(FaultConfig(fatal="500"))


def test_cli_has_a_flag_per_config_field() -> None:
    args = vars(_parser().parse_args(["--rate-limit", "0.1", "--echo-p", "--fatal", "402"]))
    assert args.pop("port") == 0
    assert FaultConfig(**args) == FaultConfig(rate_limit=0.1, echo_p=True, fatal="402")
    assert set(FAULT_KINDS) <= set(args)
    flags = ["--hostile", "all", "--huge-bytes", "10", "--echo-secrets", "--server-error-text", "1"]
    args = vars(_parser().parse_args(flags))
    args.pop("port")
    assert FaultConfig(**args) == FaultConfig(
        hostile="all", huge_bytes=10, echo_secrets=True, server_error_text=1.0
    )


def test_subprocess_mode_serves_until_sigterm() -> None:
    cmd = [sys.executable, "-m", "flipbench.testing.fault_server", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--latency-s", "0.01"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "server printed nothing"
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base = line.removeprefix("listening on ") + "/api/v1"

        async def go() -> tuple[int, dict[str, str], bytes]:
            async with aiohttp.ClientSession() as s:
                return await post(s, base)

        status, headers, raw = asyncio.run(go())
        assert status == 200 and json.loads(raw)["id"] == headers["X-Generation-Id"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- Hostile reply shapes -------------------------------------------------------------------

COST = 0.00001
EVIL = "http://evil.example"


def choice_of(data: dict[str, Any]) -> Any:
    assert data["object"] == "chat.completion" and data["id"].startswith("gen-")
    return data["choices"][0]


def check_content(expected: Any) -> Any:
    def check(status: int, headers: dict[str, str], raw: bytes) -> None:
        data = json.loads(raw)
        choice = choice_of(data)
        assert choice["message"]["content"] == expected and choice["finish_reason"] == "stop"
        assert data["usage"]["cost"] == COST

    return check


def check_cost(token: bytes) -> Any:
    def check(status: int, headers: dict[str, str], raw: bytes) -> None:
        assert b'"cost": ' + token + b"," in raw
        assert choice_of(json.loads(raw))["message"]["content"] == "1"

    return check


def check_deep(status: int, headers: dict[str, str], raw: bytes) -> None:
    text = raw.decode()
    start = text.index('"x": ') + len('"x": ')
    opened = len(text[start:]) - len(text[start:].lstrip("["))
    after = text[start + opened :]
    closed = len(after) - len(after.lstrip("]"))
    assert opened == closed == DEEP_JSON_DEPTH
    assert after[closed:].startswith("}}]") and '"content": "1"' in text[:start]
    with pytest.raises(RecursionError):
        json.loads(raw)


def check_surrogate(status: int, headers: dict[str, str], raw: bytes) -> None:
    assert b'"content": "1 \\ud800"' in raw
    content = choice_of(json.loads(raw))["message"]["content"]
    assert content == "1 \ud800"
    with pytest.raises(UnicodeEncodeError), sqlite3.connect(":memory:") as db:
        db.execute("SELECT ?", (content,))


def check_huge(status: int, headers: dict[str, str], raw: bytes) -> None:
    content = choice_of(json.loads(raw))["message"]["content"]
    assert content.startswith("1 lorem ipsum") and len(content) == 1 + 1000


def check_error_ansi(status: int, headers: dict[str, str], raw: bytes) -> None:
    error = json.loads(raw)["error"]
    assert error["code"] == 502 and "choices" not in json.loads(raw)
    message = error["message"]
    assert message.startswith(f'=HYPERLINK("{EVIL}","x")')
    for payload in ("\x1b[2J", f"\x1b]8;;{EVIL}\x07click\x1b]8;;\x07", "[/bold]"):
        assert payload in message
    assert f"[link={EVIL}]x[/link]" in message


def check_usage_list(status: int, headers: dict[str, str], raw: bytes) -> None:
    data = json.loads(raw)
    assert data["usage"] == [1, 2, 3] and choice_of(data)["message"]["content"] == "1"


def check_raw(body: bytes, content_type: str) -> Any:
    def check(status: int, headers: dict[str, str], raw: bytes) -> None:
        assert raw == body and headers["Content-Type"].startswith(content_type)

    return check


def check_choices(expected: Any) -> Any:
    def check(status: int, headers: dict[str, str], raw: bytes) -> None:
        data = json.loads(raw)
        assert data["choices"] == expected(data) and data["usage"]["cost"] == COST

    return check


MESSAGE = {"role": "assistant", "content": "1", "reasoning": None}
CHOICE = {"index": 0, "finish_reason": "stop", "native_finish_reason": "stop", "message": MESSAGE}
# shape -> (check of the reply, the cost billed for it or None)
HOSTILE_CHECKS: dict[str, tuple[Any, float | None]] = {
    "content_parts": (check_content([{"type": "text", "text": "1"}]), COST),
    "content_int": (check_content(1), COST),
    "content_null": (check_content(None), COST),
    "message_string": (check_choices(lambda d: [{**CHOICE, "message": "1"}]), COST),
    "message_missing": (
        check_choices(lambda d: [{k: v for k, v in CHOICE.items() if k != "message"}]),
        COST,
    ),
    "choices_null": (check_choices(lambda d: [None]), COST),
    "choices_object": (check_choices(lambda d: {"0": CHOICE}), COST),
    "usage_list": (check_usage_list, None),
    "cost_string": (check_cost(b'"0.00001"'), COST),
    "cost_inf": (check_cost(b"Infinity"), None),
    "cost_nan": (check_cost(b"NaN"), None),
    "cost_negative": (check_cost(b"-4000"), None),
    "cost_huge": (check_cost(b"1e+308"), 1e308),
    "deep_json": (check_deep, COST),
    "surrogate": (check_surrogate, COST),
    "huge": (check_huge, COST),
    "ansi": (check_content("\x1b[31m1\x1b[0m"), COST),
    "error_ansi": (check_error_ansi, None),
    "content_formula": (check_content(f'=HYPERLINK("{EVIL}","1")'), COST),
    "content_markup": (check_content(f"[/bold] 1 [link={EVIL}]x[/link]"), COST),
    "not_json": (check_raw(b"<html>oops</html>", "text/html"), None),
    "json_array": (check_raw(b"[1, 2]", "application/json"), None),
    "empty_body": (check_raw(b"", "application/json"), None),
}


def test_every_hostile_shape_has_a_check() -> None:
    assert tuple(HOSTILE_CHECKS) == HOSTILE_SHAPES
    assert FaultConfig().hostile is None and FaultConfig().huge_bytes == 10_000_000


@pytest.mark.parametrize("shape", HOSTILE_SHAPES)
def test_hostile_shape_is_served(shape: str) -> None:
    check, billed = HOSTILE_CHECKS[shape]

    async def go() -> None:
        async with (
            serving(hostile=shape, p_one=1.0, huge_bytes=1000) as (server, url),
            aiohttp.ClientSession() as s,
        ):
            status, headers, raw = await post(s, url)
            assert status == 200
            check(status, headers, raw)
            assert server.counts[f"hostile_{shape}"] == 1
            assert server.counts.get("billed", 0) == (billed is not None)
            assert server.billed_usd == (billed or 0.0)

    asyncio.run(go())


def test_answers_in_hostile_shapes_follow_p_one() -> None:
    async def go() -> list[Any]:
        options = {"hostile": "content_parts,message_string", "p_one": 0.0}
        async with serving(**options) as (_, url), aiohttp.ClientSession() as s:
            return [json.loads((await post(s, url))[2])["choices"][0] for _ in range(2)]

    parts, string = asyncio.run(go())
    assert parts["message"]["content"] == [{"type": "text", "text": "0"}]
    assert string["message"] == "0"


def test_hostile_all_cycles_through_every_shape_in_order() -> None:
    async def go() -> list[str]:
        # Errors drawn before the reply stage do not advance the cycle.
        options = {"hostile": "all", "huge_bytes": 10, "rate_limit": 0.3, "seed": 5}
        served: list[str] = []
        async with serving(**options) as (server, url), aiohttp.ClientSession() as s:
            for _ in range(2 * len(HOSTILE_SHAPES) + 20):
                before = server.counts
                await post(s, url)
                new = [k for k, v in server.counts.items() if v != before.get(k, 0)]
                served += [k.removeprefix("hostile_") for k in new if k.startswith("hostile_")]
            assert server.counts["rate_limit"] > 0
            assert len(served) == server.counts["ok"]
        return served

    served = asyncio.run(go())
    assert len(served) > len(HOSTILE_SHAPES)
    assert served == [HOSTILE_SHAPES[k % len(HOSTILE_SHAPES)] for k in range(len(served))]


def test_hostile_list_cycles_through_its_shapes() -> None:
    async def go() -> list[bytes]:
        async with (
            serving(hostile=" json_array, empty_body ,not_json") as (_, url),
            aiohttp.ClientSession() as s,
        ):
            return [(await post(s, url))[2] for _ in range(7)]

    got = asyncio.run(go())
    cycle = [b"[1, 2]", b"", b"<html>oops</html>"]
    assert got == [cycle[k % 3] for k in range(7)]


@pytest.mark.parametrize("spec", ["nope", "content_int,nope", "", " , "])
def test_unknown_hostile_shape_is_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="hostile"):
        FaultServer(FaultConfig(hostile=spec))
    with pytest.raises(ValueError, match="huge_bytes"):
        FaultServer(FaultConfig(huge_bytes=-1))


# --- Secret echo ----------------------------------------------------------------------------

KEY = "hunter2-bare-key-0042"
SENT = {"Authorization": f"Bearer {KEY}", "X-Custom-Token": "tok-7781"}


@pytest.mark.parametrize(
    ("options", "body", "status"),
    [
        ({"api_key": "sk-other"}, None, 401),
        ({"rate_limit": 1.0}, None, 429),
        ({"server_error": 1.0}, None, 502),
        ({"server_error": 1.0, "server_error_status": 500}, None, 500),
        ({"error_200": 1.0}, None, 200),
        ({"in_flight_402": 1.0}, None, 402),
        ({"fatal": "401"}, None, 401),
        ({"fatal": "402"}, None, 402),
        ({"fatal": "404"}, None, 404),
        ({"fatal": "400"}, None, 400),
        ({}, "not json", 400),
        ({"hostile": "error_ansi"}, None, 200),
    ],
)
def test_echo_secrets_puts_the_key_in_error_bodies_and_headers(
    options: dict[str, Any], body: str | None, status: int
) -> None:
    async def go(echo: bool) -> tuple[int, dict[str, str], bytes]:
        async with serving(echo_secrets=echo, **options) as (_, url), aiohttp.ClientSession() as s:
            if body is None:
                return await post(s, url, headers=SENT)
            async with s.post(url + "/chat/completions", data=body, headers=SENT) as r:
                return r.status, dict(r.headers), await r.read()

    got_status, headers, raw = asyncio.run(go(True))
    assert got_status == status
    error = json.loads(raw)["error"]
    assert f"Authorization: Bearer {KEY}" in error["message"]
    assert "X-Custom-Token: tok-7781" in error["message"]
    meta = error["metadata"]
    assert meta["authorization"] == f"Bearer {KEY}"
    assert meta["headers"]["Authorization"] == f"Bearer {KEY}"
    assert meta["headers"]["X-Custom-Token"] == "tok-7781"
    assert f"\r\nAuthorization: Bearer {KEY}" in meta["raw"]
    assert meta["raw"].startswith("POST /api/v1/chat/completions HTTP/1.1\r\n")
    assert headers["X-Echo-Authorization"] == f"Bearer {KEY}" and headers["X-Request-ID"] == KEY

    quiet_status, quiet_headers, quiet_raw = asyncio.run(go(False))
    assert quiet_status == status and KEY.encode() not in quiet_raw
    assert not any(KEY in v for v in quiet_headers.values())


def test_echo_secrets_on_a_missing_key_echoes_the_other_headers() -> None:
    async def go() -> tuple[int, dict[str, str], bytes]:
        options = {"api_key": "sk-good", "echo_secrets": True}
        async with serving(**options) as (_, url), aiohttp.ClientSession() as s:
            return await post(s, url, headers={"X-Custom-Token": "tok-7781"})

    status, headers, raw = asyncio.run(go())
    error = json.loads(raw)["error"]
    assert status == 401 and error["message"].startswith("No auth credentials found")
    assert error["metadata"]["headers"]["X-Custom-Token"] == "tok-7781"
    assert headers["X-Echo-Authorization"] == "" and headers["X-Request-ID"].startswith("req-")


def test_echo_secrets_plain_text_500_and_url_password() -> None:
    async def go() -> list[tuple[int, dict[str, str], bytes]]:
        async with (
            serving(server_error_text=1.0, echo_secrets=True) as (server, url),
            aiohttp.ClientSession() as s,
        ):
            out = [await post(s, url, headers=SENT)]
            # A password in the base URL goes out as Basic auth: echoed decoded too.
            with_password = url.replace("http://", "http://alice:pw-url-5551@")
            out.append(await post(s, with_password))
            assert server.counts == {"requests": 2, "server_error_text": 2}
            return out

    (status, headers, raw), (_, basic_headers, basic_raw) = asyncio.run(go())
    assert status == 500 and headers["Content-Type"].startswith("text/plain")
    text = raw.decode()
    assert text.startswith("500 Internal Server Error") and f"Authorization: Bearer {KEY}" in text
    assert "X-Custom-Token: tok-7781" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    assert headers["X-Echo-Authorization"] == f"Bearer {KEY}" and headers["X-Request-ID"] == KEY
    assert basic_headers["X-Echo-Authorization"].startswith("Basic ")
    assert basic_headers["X-Request-ID"] == "alice:pw-url-5551"
    assert b"Authorization: Basic " in basic_raw

    status, _, raw = one(server_error_text=1.0)
    assert status == 500 and raw.decode().startswith("500 Internal Server Error")
    assert b"Authorization" not in raw


def test_success_replies_do_not_echo() -> None:
    async def go() -> tuple[int, dict[str, str], bytes]:
        async with serving(echo_secrets=True) as (_, url), aiohttp.ClientSession() as s:
            return await post(s, url, headers=SENT)

    status, headers, raw = asyncio.run(go())
    assert status == 200 and KEY.encode() not in raw
    assert not any(KEY in v for v in headers.values())


# --- Billing --------------------------------------------------------------------------------


def test_billed_usd_sums_what_was_sent() -> None:
    mix = {"rate_limit": 0.2, "cache_hit": 0.1, "empty_length": 0.1, "no_choices": 0.05}

    async def go(concurrent: bool) -> tuple[dict[str, int], float, list[float]]:
        async with serving(seed=9, cost_per_call=0.25, **mix) as (server, url):
            async with aiohttp.ClientSession() as s:
                if concurrent:
                    await asyncio.gather(*(post(s, url) for _ in range(300)))
                else:
                    for _ in range(300):
                        await post(s, url)
            return server.counts, server.billed_usd, server.billed_costs

    counts, total, costs = asyncio.run(go(concurrent=False))
    paid = counts["ok"] + counts["empty_length"]
    assert counts["billed"] == paid + counts["cache_hit"] + counts["no_choices"] == len(costs)
    assert counts["rate_limit"] > 0 and "billed_undelivered" not in counts
    assert total == 0.25 * paid and sorted(set(costs)) == [0.0, 0.25]
    assert asyncio.run(go(concurrent=True))[:2] == (counts, total)  # same draws, same bill


def test_billing_skips_unreadable_costs_and_overflows_to_inf() -> None:
    async def go(hostile: str, n: int) -> FaultServer:
        async with serving(hostile=hostile) as (server, url), aiohttp.ClientSession() as s:
            for _ in range(n):
                await post(s, url)
            return server

    server = asyncio.run(go("cost_inf,cost_nan,cost_negative,usage_list,cost_string", 5))
    assert server.counts["billed"] == 1 and server.billed_costs == [COST]
    server = asyncio.run(go("cost_huge", 2))
    assert server.billed_costs == [1e308, 1e308] and server.billed_usd == math.inf


def test_replies_to_a_closed_connection_are_billed_as_undelivered() -> None:
    async def go() -> None:
        async with serving(latency_s=0.3) as (server, url), aiohttp.ClientSession() as s:
            with pytest.raises(asyncio.TimeoutError):
                async with s.post(
                    url + "/chat/completions", json=BODY, timeout=aiohttp.ClientTimeout(total=0.05)
                ) as r:
                    await r.read()
            await post(s, url)  # sent after the abandoned one was answered
            assert server.counts["billed"] == 2 and server.counts["billed_undelivered"] == 1
            assert server.billed_usd == 2 * COST and server.undelivered_usd == COST

    asyncio.run(go())
