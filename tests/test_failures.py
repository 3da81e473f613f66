"""Every reply of a chat-completions call maps to success, rate limit, transient or fatal."""

from __future__ import annotations

import asyncio
import json
from email.utils import formatdate
from typing import Any

import pytest

from flipbench.providers.failures import (
    Failure,
    FailureKind,
    classify,
    parse_retry_after,
    scrub,
)

RATE, TRANSIENT, FATAL = FailureKind.RATE_LIMIT, FailureKind.TRANSIENT, FailureKind.FATAL

SUCCESS = {
    "id": "gen-1",
    "provider": "DeepInfra",
    "choices": [{"message": {"role": "assistant", "content": "1"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 1, "cost": 0.00002},
}


def err(code: object, message: str, **metadata: object) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if metadata:
        body["metadata"] = metadata
    return {"error": body}


def run(
    status: int | None = 200,
    data: object | None = None,
    text: str | None = None,
    headers: dict[str, str] | None = None,
    error: BaseException | None = None,
) -> Failure | None:
    if text is None and data is not None:
        text = json.dumps(data)
    return classify(status=status, data=data, text=text, headers=headers, error=error)


def case(
    name: str,
    status: int | None,
    data: object,
    kind: FailureKind | None,
    reason: str | None,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    return pytest.param(status, data, text, headers, kind, reason, id=name)


# expected kind and reason for each reply; None: a usable success
CASES = [
    case("success", 200, SUCCESS, None, None),
    case("success_without_status", None, SUCCESS, None, None),
    case("nothing_at_all", None, None, TRANSIENT, "no_response"),
    case("error_body_502", 200, err(502, "Provider returned error"), TRANSIENT, "error_body_502"),
    case(
        "error_body_503",
        200,
        err(503, "No endpoints found matching your data policy"),
        TRANSIENT,
        "error_body_503",
    ),
    case("error_body_408", 200, err(408, "Request timed out"), TRANSIENT, "error_body_408"),
    case(
        "error_body_429",
        200,
        err(429, "Provider returned error", provider_name="Venice"),
        RATE,
        "error_body_429",
    ),
    case("http_500", 500, err(500, "Internal Server Error"), TRANSIENT, "http_500"),
    case(
        "http_502_html",
        502,
        None,
        TRANSIENT,
        "http_502",
        text="<html><body>Bad gateway</body></html>",
    ),
    case("http_504_empty", 504, None, TRANSIENT, "http_504", text=""),
    case("http_408", 408, None, TRANSIENT, "http_408", text="timeout"),
    case(
        "http_429",
        429,
        err(429, "Rate limit exceeded: free-models-per-min"),
        RATE,
        "http_429",
        headers={"Retry-After": "1"},
    ),
    case("no_choices", 200, {"id": "gen-2", "provider": "x"}, TRANSIENT, "no_choices"),
    case("empty_choices", 200, {"id": "gen-3", "choices": []}, TRANSIENT, "no_choices"),
    case("choices_null", 200, {"choices": None}, TRANSIENT, "no_choices"),
    case("malformed", 200, None, TRANSIENT, "malformed_json", text='{"id": "gen-4", "choi'),
    case("empty_body", 200, None, TRANSIENT, "malformed_json", text=""),
    case("json_list", 200, [1, 2], TRANSIENT, "malformed_json", text="[1, 2]"),
    case("json_string", 200, "hello", TRANSIENT, "malformed_json", text='"hello"'),
    case(
        "credits_402",
        402,
        err(402, "Insufficient credits", limit_source="openrouter_credits"),
        FATAL,
        "no_credits",
    ),
    case(
        "weight_402",
        402,
        err(
            402,
            "Request cost exceeds budget",
            limit_source="openrouter_credits",
            reason="weight_exceeds_budget",
        ),
        FATAL,
        "no_credits",
    ),
    case(
        "in_flight_402_reason",
        402,
        err(402, "In-flight budget exhausted", reason="in_flight_budget_exhausted"),
        RATE,
        "in_flight_402",
        headers={"retry-after": "3"},
    ),
    case(
        "in_flight_402_source",
        402,
        err(402, "busy", limit_source="in_flight"),
        RATE,
        "in_flight_402",
    ),
    case(
        "in_flight_402_openrouter",
        402,
        err(402, "busy", limit_source="openrouter_in_flight_budget"),
        RATE,
        "in_flight_402",
    ),
    case("bad_key_401", 401, err(401, "User not found."), FATAL, "bad_key"),
    case(
        "moderation_403",
        403,
        err(403, "Input flagged", reasons=["violence"], provider_name="OpenAI"),
        FATAL,
        "moderation",
    ),
    case(
        "unknown_model_404",
        404,
        err(404, "No endpoints found for foo/bar."),
        FATAL,
        "unknown_model",
    ),
    case("bad_request_400", 400, err(400, "foo/bar is not a valid model ID"), FATAL, "bad_request"),
    case("bad_request_413", 413, None, FATAL, "bad_request", text="Payload Too Large"),
    case("bad_request_422", 422, {"detail": "temperature must be >= 0"}, FATAL, "bad_request"),
    case(
        "openai_string_code",
        401,
        {
            "error": {
                "message": "Incorrect API key",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
        FATAL,
        "bad_key",
    ),
    case("string_numeric_code", 200, err("502", "upstream"), TRANSIENT, "error_body_502"),
    case("error_string", 200, {"error": "something broke"}, TRANSIENT, "error_body"),
    case(
        "choice_error",
        200,
        {"choices": [{"finish_reason": "error", "error": {"code": 502, "message": "cut"}}]},
        TRANSIENT,
        "error_body_502",
    ),
    case("error_null_is_success", 200, {**SUCCESS, "error": None}, None, None),
]


@pytest.mark.parametrize(
    ("status", "data", "text", "headers", "kind", "reason"),
    CASES,
)
def test_classification_table(
    status: int | None,
    data: object,
    text: str | None,
    headers: dict[str, str] | None,
    kind: FailureKind | None,
    reason: str | None,
) -> None:
    failure = run(status, data, text, headers)
    if kind is None:
        assert failure is None
        return
    assert failure is not None
    assert (failure.kind, failure.reason) == (kind, reason)
    assert failure.message and "\n" not in failure.message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (asyncio.TimeoutError(), "timeout"),  # noqa: UP041 - the alias callers catch
        (TimeoutError("read timed out"), "timeout"),
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"), "connection"),
        (ConnectionResetError("reset by peer"), "connection"),
        (OSError("network unreachable"), "connection"),
        (ValueError("odd"), "client_error"),
    ],
)
def test_client_exceptions_are_transient(error: BaseException, reason: str) -> None:
    failure = classify(status=None, data=None, text=None, headers=None, error=error)
    assert failure is not None
    assert (failure.kind, failure.reason) == (TRANSIENT, reason)


def test_aiohttp_style_disconnect_is_a_connection_error_without_importing_aiohttp() -> None:
    class ClientConnectionError(Exception): ...

    class ServerDisconnectedError(ClientConnectionError): ...

    failure = classify(
        status=None, data=None, text=None, headers=None, error=ServerDisconnectedError()
    )
    assert failure is not None and failure.reason == "connection"


def test_retry_after_from_header_and_from_metadata() -> None:
    limited = run(429, err(429, "Rate limit exceeded"), headers={"Retry-After": "1"})
    assert limited is not None and limited.retry_after_s == 1.0
    in_flight_body = err(402, "x", reason="in_flight_budget_exhausted")
    in_flight = run(402, in_flight_body, headers={"RETRY-AFTER": "2.5"})
    assert in_flight is not None and in_flight.retry_after_s == 2.5
    # OpenRouter copies the upstream Retry-After into the metadata of an HTTP-200 error body.
    upstream = run(200, err(429, "Provider returned error", retry_after_seconds=17))
    assert upstream is not None and upstream.retry_after_s == 17.0
    nested = run(200, err(429, "Provider returned error", headers={"Retry-After": "4"}))
    assert nested is not None and nested.retry_after_s == 4.0
    transient = run(503, None, "busy", headers={"retry-after": "5"})
    assert transient is not None and transient.retry_after_s == 5.0
    plain = run(429, err(429, "Rate limit exceeded"))
    assert plain is not None and plain.retry_after_s is None
    fatal = run(401, err(401, "User not found."), headers={"Retry-After": "9"})
    assert fatal is not None and fatal.retry_after_s is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # past → now
    later = parse_retry_after(formatdate(now + 120, usegmt=True))  # against the real clock
    assert later is not None and later >= 0


def test_messages_are_clear_and_name_the_http_status() -> None:
    failure = run(401, err(401, "User not found."))
    assert failure is not None
    assert failure.message == "OpenRouter rejected the API key (HTTP 401): User not found."
    body = run(200, err(502, "Provider returned error", provider_name="Together"))
    assert body is not None
    assert "code 502 in an HTTP 200 error body" in body.message and "Together" in body.message
    custom = classify(
        status=404, data=None, text="not found", headers=None, error=None, service="vLLM"
    )
    assert custom is not None and custom.message.startswith("vLLM does not know this model")


@pytest.mark.parametrize(
    "server_message",
    [
        "bad key sk-or-v1-abcdef123456",
        "invalid header Authorization: Bearer sk-or-v1-0123456789abcdef0123",
        "got Bearer abc.def.ghi from client",
        'echo {"api_key": "zzz-secret-zzz"}',
    ],
)
def test_messages_never_carry_a_key(server_message: str) -> None:
    for status, data in [
        (401, err(401, server_message)),
        (200, err(502, server_message)),
        (500, None),
    ]:
        failure = run(status, data, text=server_message if data is None else None)
        assert failure is not None
        for secret in ("abcdef123456", "0123456789abcdef", "abc.def.ghi", "zzz-secret-zzz"):
            assert secret not in failure.message
    error = ConnectionResetError(f"while sending {server_message}")
    failure = classify(status=None, data=None, text=None, headers=None, error=error)
    assert failure is not None and "abcdef123456" not in failure.message


def test_scrub_keeps_ordinary_text_and_bounds_length() -> None:
    assert scrub("max_tokens must be  at least 1\n") == "max_tokens must be at least 1"
    assert len(scrub("x" * 1000)) == 300
