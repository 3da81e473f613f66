"""The fault server as a hostile provider: every reply shape a client must survive, the
credentials a careless server echoes, and what it billed."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from typing import Any

import aiohttp
import pytest
from fault_helpers import BODY, one, post, serving

from flipbench.testing.fault_server import (
    DEEP_JSON_DEPTH,
    HOSTILE_SHAPES,
    FaultConfig,
    FaultServer,
)

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
