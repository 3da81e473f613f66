"""Reading replies of any shape: every reply becomes a `Reply`, never an exception."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench.providers.limits import Budget
from flipbench.providers.openai_compat import (
    CHAT,
    COMPLETIONS,
    MALFORMED,
    MAX_CONTENT_CHARS,
    MAX_JSON_DEPTH,
    Exchange,
    answer_logprobs,
    parse_json,
    reported_cost,
    to_reply,
)
from flipbench.safety import register_secret


def _exchange(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Exchange:
    text = body if isinstance(body, str) else json.dumps(body)
    return Exchange(
        request={"messages": []}, status=status, headers=headers or {}, text=text,
        data=parse_json(text), error=None, latency_s=0.01, service="the test server",
    )  # fmt: skip


def _completion(message: Any, usage: Any = None) -> dict[str, Any]:
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.5} if usage is None else usage
    return {"id": "g", "choices": [{"finish_reason": "stop", "message": message}], "usage": usage}


def _read(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    ex = _exchange(body, status, headers)
    return to_reply(ex, ex.failure())


def test_content_as_a_list_of_parts_is_read() -> None:
    reply = _read(_completion({"content": [{"type": "text", "text": "1"}]}))
    assert reply.ok and reply.content == "1" and reply.invalid_category is None


@pytest.mark.parametrize(
    "body",
    [
        _completion({"content": 1}),
        _completion("1"),
        {"choices": [None], "usage": {"cost": 0.5}},
        {"choices": [{"finish_reason": "stop"}], "usage": {"cost": 0.5}},
        _completion({"content": [{"type": "text", "text": 1}]}),
    ],
    ids=["content-int", "message-string", "choices-null", "no-message", "part-int"],
)
def test_unreadable_shapes_are_malformed_samples_with_their_cost(body: Any) -> None:
    reply = _read(body)
    assert reply.ok and reply.invalid_category == MALFORMED
    assert reply.cost == 0.5  # paid for, so it counts


def test_usage_of_the_wrong_shape_is_no_cost_and_no_crash() -> None:
    reply = _read(_completion({"content": "1"}, usage=[1, 2, 3]))
    assert reply.ok and reply.content == "1" and reply.cost is None


def test_json_nested_too_deep_is_not_parsed_and_not_a_crash() -> None:
    deep = '{"choices": [{"message": {"content": "1", "x": ' + "[" * 200_000 + "]" * 200_000
    deep += "}}]}"
    assert parse_json(deep) is None
    reply = _read(deep)
    assert reply.invalid_category is not None or not reply.ok
    nested = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert parse_json(nested) is None
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None


def test_lone_surrogate_and_control_characters_become_visible_escapes() -> None:
    body = '{"choices": [{"message": {"content": "1 \\ud800 \\u001b[31mred"}}], "usage": {}}'
    reply = _read(body)
    assert reply.content == "1 \\ud800 \\x1b[31mred"
    reply.content.encode("utf-8")  # SQLite can store it


def test_huge_content_is_cut_and_the_cut_recorded() -> None:
    reply = _read(_completion({"content": "1 " + "x" * (MAX_CONTENT_CHARS * 2)}))
    assert reply.content is not None and len(reply.content) == MAX_CONTENT_CHARS
    assert reply.meta["truncated"]["content"] == MAX_CONTENT_CHARS * 2 + 2
    stored = reply.response["choices"][0]["message"]["content"]
    assert len(stored) == MAX_CONTENT_CHARS


@pytest.mark.parametrize(
    ("raw", "cost", "flag"),
    [
        (0.25, 0.25, None),
        ("0.25", 0.25, None),
        (-4000, 0.0, "negative"),
        (float("inf"), None, "non_finite"),
        (float("nan"), None, "non_finite"),
        ("abc", None, "unreadable"),
        (True, None, "unreadable"),
        ([1], None, "unreadable"),
        (1e308, 1e308, None),
    ],
)
def test_reported_cost(raw: Any, cost: float | None, flag: str | None) -> None:
    assert reported_cost({"cost": raw}) == (cost, flag)


def test_budget_counts_unusable_costs_conservatively() -> None:
    budget = Budget(1.0, already_spent=0.5)
    assert budget.count(0.1) == 0.1
    assert budget.count(None, "negative") == 0.0
    assert budget.count(None, "non_finite", estimate=0.05) == 0.1  # the largest cost seen
    assert budget.count(None, "unreadable", estimate=0.3) == 0.3  # the estimate, if larger
    assert budget.flagged == 3 and budget.spent == pytest.approx(1.0) and budget.reached
    assert Budget(1.0, already_spent=math.inf).reached


def test_secrets_in_a_reply_are_masked_before_anything_keeps_it() -> None:
    register_secret("plainkey0123456789")
    body = _completion({"content": "your key is plainkey0123456789"})
    reply = _read(body, headers={"x-request-id": "plainkey0123456789"})
    assert "plainkey0123456789" not in json.dumps(reply.response) + json.dumps(reply.meta)
    assert "plainkey0123456789" not in (reply.content or "")
    error = {"error": {"code": 500, "message": "Bearer plainkey0123456789 refused"}}
    failed = _read(error, status=500, headers={"x-request-id": "plainkey0123456789"})
    assert not failed.ok
    text = json.dumps(failed.response) + json.dumps(failed.meta) + (failed.error or "")
    assert "plainkey0123456789" not in text and "the test server" in (failed.error or "")


def _containers(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(), _containers, max_leaves=20
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_body_is_a_reply_not_an_exception(body: Any) -> None:
    shapes = (
        body, {"choices": [body]}, {"choices": [{"message": body}], "usage": body},
        {"choices": [{"text": body, "logprobs": body}], "usage": body},
    )  # fmt: skip
    for wrapped in shapes:
        try:
            text = json.dumps(wrapped)
        except ValueError:
            continue
        for endpoint in (CHAT, COMPLETIONS):  # chat messages, and text completions (raw)
            ex = Exchange({}, 200, {}, text, parse_json(text), None, 0.0, endpoint=endpoint)
            reply = to_reply(ex, ex.failure())
            json.dumps(reply.response)  # storable as JSON
            assert reply.content is None or isinstance(reply.content, str)
            answer_logprobs(reply.response, ["0", "1"])  # exact mode reads any shape too
