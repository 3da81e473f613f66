"""What the fault server is told to do: which faults, how often, and what it lists and charges.

Kept apart from the server (`fault_app`) so that a script of faults can be written, checked and
turned into command-line flags (`fault_server`) without reading any of the wire code. Each fault
field of `FaultConfig` is that fault's probability per request; the probabilities are laid out as
bands on [0, 1) in the order of `FAULT_KINDS`, so one uniform draw picks a request's fate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Fault kinds in the order their probability bands are laid out on [0, 1).
FAULT_KINDS = (
    "rate_limit",
    "error_200",
    "server_error",
    "hang",
    "malformed",
    "no_choices",
    "empty_length",
    "cache_hit",
    "in_flight_402",
    "server_error_text",
)
DEFAULT_MODELS: list[dict[str, Any]] = [
    {
        "id": "fault/model",
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
        "supported_parameters": [
            "temperature",
            "max_tokens",
            "logprobs",
            "top_logprobs",
            "reasoning",
        ],
        "context_length": 8192,
    }
]
#: Fatal modes: every request gets this status and OpenRouter's message for it.
FATAL = {
    "400": (400, "Invalid request"),
    "401": (401, "User not found."),
    "402": (402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"),
    "404": (404, "No endpoints found for {model}."),
}
FATAL_MODES = tuple(FATAL)


@dataclass(frozen=True)
class ModelScript:
    """One model's own behaviour on a server that lists many (a sweep's test): each field set
    replaces the server-wide `FaultConfig` value for requests naming this model, so 240 models
    can each have a known bias, be dead (`fatal`), be rate-limited or charge their own price."""

    p_one: float | None = None
    fatal: str | None = None  # one of FATAL_MODES
    rate_limit: float | None = None  # probability of a 429 per request
    cost_per_call: float | None = None
    # Answers a JSON-schema `response_format` as structured outputs do (`{"answer": "1"}`);
    # otherwise the schema is ignored and the bare answer sent, as by a model without them.
    structured: bool = False

    def check(self) -> None:
        if self.fatal is not None and self.fatal not in FATAL_MODES:
            raise ValueError(f"fatal must be one of {FATAL_MODES} or None")
        for value in (self.p_one, self.rate_limit):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError("p_one and rate_limit must lie in [0, 1]")


@dataclass
class FaultConfig:
    """Server behaviour; each fault field is that fault's probability per request."""

    latency_s: float = 0.0
    p_one: float = 0.7
    echo_p: bool = False
    seed: int = 0
    rate_limit: float = 0.0
    retry_after_s: float = 1.0
    error_200: float = 0.0
    server_error: float = 0.0
    server_error_status: int = 502
    hang: float = 0.0
    hang_s: float = 30.0
    malformed: float = 0.0
    no_choices: float = 0.0
    empty_length: float = 0.0
    cache_hit: float = 0.0
    in_flight_402: float = 0.0
    fatal: str | None = None
    api_key: str | None = None
    cost_per_call: float = 0.00001
    record_bodies: bool = False
    logprobs: bool = True  # False: like providers that return null logprobs without an error
    server_error_text: float = 0.0  # a 500 whose body is plain text, not JSON
    hostile: str | None = None  # a HOSTILE_SHAPES name, "all", or a comma-separated list
    huge_bytes: int = 10_000_000  # filler after the answer in the "huge" shape
    echo_secrets: bool = False  # error replies echo the Authorization header and all headers
    # The top_logprobs lists of exact mode, as a provider that shows only its top k: answer
    # tokens left out of every list ("0", or "0,1"), extra candidates in every list
    # ("3=0.5,Sure=0.2": a token several answers share, a non-answer), at most `top_k_cap`
    # candidates (0: as many as requested; 1: all but the most probable one left out), and as
    # many non-answer filler tokens of probability `top_filler_p` (0: none) as were requested,
    # so that an answer less probable than that falls out of the list. With any of these set a
    # list is ordered by probability, as real ones are, and cut to the requested count.
    omit_from_top: str = ""
    top_extra: str = ""
    top_k_cap: int = 0
    top_filler_p: float = 0.0
    # Per-key credit ("KEY=K,KEY2=K2"), as separate accounts or keys with credit limits: a
    # request with KEY is answered as usual K times, then always 402 "Insufficient credits".
    # With any set, only these keys (and `api_key`) are accepted; others get 401.
    key_credits: str = ""


def key_credits(config: FaultConfig) -> dict[str, int]:
    """`key_credits` as {key: calls it pays for} (ValueError when it cannot be read)."""
    credits: dict[str, int] = {}
    for item in filter(None, (i.strip() for i in config.key_credits.split(","))):
        key, sep, count = item.rpartition("=")
        if not sep or not key.strip() or not count.strip().isdigit():
            raise ValueError("key_credits entries are KEY=CALLS with CALLS an integer >= 0")
        credits[key.strip()] = int(count)
    return credits


def top_extra_candidates(config: FaultConfig) -> list[tuple[str, float]]:
    """`top_extra` as (token, probability) pairs (ValueError when it cannot be read)."""
    pairs = []
    for item in filter(None, (i.strip() for i in config.top_extra.split(","))):
        token, sep, prob = item.rpartition("=")
        p = float(prob)
        if not sep or not token or not 0.0 <= p <= 1.0:
            raise ValueError(f"top_extra entries are token=probability in [0, 1], got {item!r}")
        pairs.append((token, p))
    return pairs


def omitted_from_top(config: FaultConfig) -> frozenset[str]:
    """The tokens `omit_from_top` leaves out of every top_logprobs list."""
    return frozenset(filter(None, (t.strip() for t in config.omit_from_top.split(","))))


def fault_probabilities(config: FaultConfig) -> list[float]:
    """Each fault's probability, in the order of `FAULT_KINDS`."""
    return [getattr(config, k) for k in FAULT_KINDS]


def check_config(config: FaultConfig) -> None:
    """Refuse a script the server cannot play (ValueError), before it binds a port."""
    probs = fault_probabilities(config)
    if any(not 0.0 <= p <= 1.0 for p in probs) or sum(probs) > 1.0 + 1e-9:
        raise ValueError("fault probabilities must lie in [0, 1] and sum to at most 1")
    if config.fatal is not None and config.fatal not in FATAL_MODES:
        raise ValueError(f"fatal must be one of {FATAL_MODES} or None")
    if not 500 <= config.server_error_status <= 599:
        raise ValueError("server_error_status must be a 5xx status")
    if config.huge_bytes < 0:
        raise ValueError("huge_bytes must be >= 0")
    if config.top_k_cap < 0 or not 0.0 <= config.top_filler_p <= 1.0:
        raise ValueError("top_k_cap must be >= 0 and top_filler_p in [0, 1]")
    top_extra_candidates(config)
    key_credits(config)
