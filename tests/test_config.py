"""RunConfig bounds every user choice, for the CLI and the Python API alike, and `-M` extra
request fields cannot replace what the recorded definition sends."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flipbench.config import MAX_N, OWNED_REQUEST_FIELDS, RunConfig

HUGE = 10**400


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n", HUGE, "less than or equal to 1000000"),
        ("n", 10**18, "less than or equal to 1000000"),
        ("n", 0, "greater than or equal to 1"),
        ("n", -HUGE, "greater than or equal to 1"),
        ("d", 1001, "less than or equal to 1000"),
        ("max_tokens", HUGE, "less than or equal to 1000000"),
        ("max_tokens", 0, "greater than or equal to 1"),
        ("seed", HUGE, "less than or equal to 9223372036854775807"),
        ("seed", -1, "greater than or equal to 0"),
        ("max_concurrency", HUGE, "less than or equal to 4096"),
        ("max_retries", HUGE, "less than or equal to 100"),
        ("temperature", float("nan"), "finite number"),
        ("temperature", float("inf"), "finite number"),
        ("temperature", 101.0, "less than or equal to 100"),
        ("timeout_s", float("nan"), "finite number"),
        ("timeout_s", 1e400, "finite number"),
        ("max_cost", float("inf"), "finite number"),
        ("max_attempts_factor", float("nan"), "finite number"),
        ("prompt", "x" * 100_001, "at most 100000 characters"),
    ],
)
def test_every_setting_is_bounded(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RunConfig(**{field: value})  # type: ignore[arg-type]


def test_the_bounds_admit_real_experiments() -> None:
    config = RunConfig(n=MAX_N, d=1000, max_tokens=131_072, seed=2**63 - 1, temperature=2.0)
    assert config.n == MAX_N


@pytest.mark.parametrize("key", sorted(OWNED_REQUEST_FIELDS))
def test_model_options_cannot_replace_what_the_definition_sends(key: str) -> None:
    with pytest.raises(ValidationError, match="would bypass the recorded definition"):
        RunConfig(model_options={key: 1})


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("temperature", "use --temperature"),
        ("Temperature", "use --temperature"),  # as the body would spell it, or not
        (" max-tokens ", "use --max-tokens"),
        ("messages", "use --prompt / --system-prompt"),
        ("model", "use --model"),
        ("seed", "use --seed"),
        ("top_logprobs", "use --mode exact"),
        ("response_format", "use --constrained"),
    ],
)
def test_the_refusal_names_the_proper_flag(key: str, hint: str) -> None:
    with pytest.raises(ValidationError, match=hint):
        RunConfig(model_options={key: "x"})


def test_other_model_options_pass_as_plain_json() -> None:
    options = {"reasoning": {"effort": "low"}, "provider": {"only": ["groq"]}, "top_p": 0.9}
    assert RunConfig(model_options=options).model_options == options


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), {"deep": [float("-inf")]}, object(), b"bytes"]
)
def test_model_options_must_be_strict_json(value: object) -> None:
    with pytest.raises(ValidationError, match="plain JSON"):
        RunConfig(model_options={"x": value})


def test_model_options_are_size_bounded() -> None:
    with pytest.raises(ValidationError, match="too large"):
        RunConfig(model_options={"x": "y" * 200_000})
