"""The scripted OpenRouter stand-in must reproduce the wire format exactly, faults included.

Every other network test trusts this server to look like OpenRouter, so its replies are checked
byte-for-byte here, over real loopback HTTP with the same client library flipbench uses.
"""

from __future__ import annotations

import asyncio
import json
import math
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from fault_helpers import BODY, one, outcome, post, serving, within_binomial

from flipbench.testing.fault_server import (
    FAULT_KINDS,
    FaultConfig,
    FaultServer,
    _parser,
    running_in_thread,
)


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
