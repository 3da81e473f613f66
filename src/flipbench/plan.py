"""The plan printed before every run starts: how many calls, the attempt cap, and what the run
may cost (API models) or how long it may take (a local model).

Prompt tokens are estimated from characters (≈ 4 per token plus a few per message for the chat
template): the catalogue gives prices, not a tokenizer. The cost is a range, because a reply
may use one completion token (a plain model answering "1") or all of max_tokens (a reasoning
model thinking first).

A local run's time comes from rates measured on the embedded model (SmolLM2-135M, llama.cpp,
4 requests of 16 completions on 64 slots, this project's 2-core machine, end to end through
flipbench: `LOCAL_RATES`); other
GGUF files or machines differ, so it is an order of magnitude, said as "about". A run whose
estimate passes `SLOW_RUN_S` gets a warning before it starts, with a faster way to ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from flipbench.providers.base import Pricing, estimate_prompt_tokens

__all__ = [
    "LOCAL_RATES", "SLOW_RUN_S", "LocalRates", "Plan", "duration", "estimate_prompt_tokens",
    "local_seconds", "slow_warning",
]  # fmt: skip


@dataclass(frozen=True)
class LocalRates:
    """What one request costs on the embedded model, measured end to end (see module doc)."""

    #: Sampled replies per second when the reply is one short answer (a constrained single
    #: flip, `logit_bias`, 16 completions a request in slots of 256 tokens): 350-380/s journaled
    #: on a quiet machine (bench/local_throughput.py), about half of it counted for a busy one;
    #: one completion per request with a grammar was ~25/s.
    short_requests_per_s: float = 190.0
    #: Decoded tokens per second over all slots, for longer replies: ~133/s measured quiet
    #: (unconstrained single flip, 16 tokens a reply, 64 slots of 256 tokens: 5,244 replies in
    #: 630 s) — decoding is compute-bound here (~0.27 GFLOP a token), so slots do not raise it;
    #: unconstrained replies run to max_tokens when the model rambles, games up to their
    #: reasoning budget.
    tokens_per_s: float = 120.0
    #: Exact mode: one whole-answer reading per condition (single flip ~0.8-1 s a condition on
    #: a quiet machine, a word pair ~1.5-2 s: more forms, longer words; stop factors read as
    #: masses, `providers/llama_reading`); errs long for the one-token answer sets.
    exact_s_per_condition: float = 1.2
    #: Prompt tokens computed per second: ~4 ms a token on the 2 cores (SmolLM2, cold prompts
    #: of 5-250 tokens, linear), the cost that long prompts (needles, in-context evidence)
    #: add to every reading and to every slot a sampled condition lands on.
    prompt_tokens_per_s: float = 250.0
    #: Slots of a sampled run (4 requests in flight × 16 completions): the most prompt
    #: computations a condition can cost. A generous bound: measured, a request of 16
    #: completions computes its prompt once (its children share it), and later requests hit
    #: the cache; kept since it was set against a real 616 s in-context run.
    slots: int = 64


LOCAL_RATES = LocalRates()
#: A local run whose estimate passes this gets a warning (and a faster way to ask) first.
SLOW_RUN_S = 180.0


def local_seconds(
    calls: int,
    *,
    exact: bool,
    reply_tokens: tuple[int, int],
    prompt_tokens: int = 0,
    conditions: int | None = None,
    rates: LocalRates = LOCAL_RATES,
) -> tuple[float, float]:
    """Seconds `calls` requests take on the embedded model: (fewest, most), for replies of
    `reply_tokens` = (fewest, most) decoded tokens each (a constrained reply: its answer tokens
    and the end token; an unconstrained one: up to max_tokens), after prompts of about
    `prompt_tokens` over `conditions` conditions. An exact reading computes its prompt afresh
    once; a sampled condition's prompt is computed at least once, at most on every slot (a
    long prompt on 64 slots dominates: an in-context run said 1-40 s and took 616 s before
    prompts were counted)."""
    prompt_s = prompt_tokens / rates.prompt_tokens_per_s
    if exact:
        seconds = calls * (rates.exact_s_per_condition + prompt_s)
        return seconds, seconds
    per_request = [
        max(1.0 / rates.short_requests_per_s, tokens / rates.tokens_per_s)
        for tokens in reply_tokens
    ]
    served = calls if conditions is None else min(calls, conditions)
    landed = calls if conditions is None else min(calls, conditions * rates.slots)
    return (
        calls * per_request[0] + served * prompt_s,
        calls * per_request[1] + landed * prompt_s,
    )


def duration(seconds: float) -> str:
    """Seconds as a person reads them: `40 s`, `12 min`, `3.5 h`."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Plan:
    """Calls still needed (every reply valid), the attempt cap, and the cost range (API
    models) or the time range on the embedded model (`seconds`, local models)."""

    conditions: int
    calls: int
    max_calls: int
    prompt_tokens: int
    max_tokens: int
    pricing: Pricing | None
    seconds: tuple[float, float] | None = None

    def cost_range(self, calls: int | None = None) -> tuple[float, float] | None:
        """USD for `calls` calls (default: the needed ones) at 1 and at max_tokens output."""
        if self.pricing is None:
            return None
        calls = self.calls if calls is None else calls
        prompt = self.prompt_tokens * self.pricing.prompt
        return (
            calls * (prompt + self.pricing.completion),
            calls * (prompt + self.max_tokens * self.pricing.completion),
        )

    def line(self) -> str:
        text = (
            f"plan: {self.calls:,} calls over {self.conditions} conditions"
            f" (at most {self.max_calls:,} with retries of invalid replies)"
        )
        if self.seconds is not None:
            fewest, most = (duration(s) for s in self.seconds)
            span = fewest if fewest == most else f"{fewest}–{most}"
            return text + f"; about {span} with the cores free (the embedded model's rates)"
        cost = self.cost_range()
        if cost is None:
            return text + "; no prices in the model catalogue, so no cost estimate"
        low, high = cost
        return (
            text + f"; estimated cost ${low:.4g}–${high:.4g} (≈{self.prompt_tokens} prompt tokens,"
            f" 1–{self.max_tokens} completion tokens per call, catalogue prices)"
        )


def slow_warning(plan: Plan, exact_possible: bool) -> str | None:
    """A warning before a local run estimated to take longer than `SLOW_RUN_S`, with what
    would be faster (None: quick enough)."""
    if plan.seconds is None or plan.seconds[1] <= SLOW_RUN_S:
        return None
    faster = (
        "--mode exact reads the probabilities in seconds"
        if exact_possible
        else "a smaller --n or --grid is quicker"
    )
    return (
        f"warning: this run may take up to {duration(plan.seconds[1])} on this machine"
        f" ({plan.calls:,} calls); {faster}. Ctrl-C stops it, --resume ID continues it"
    )
