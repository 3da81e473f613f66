"""The plan printed before a paid run starts: how many calls, and what they may cost.

Prompt tokens are estimated from characters (≈ 4 per token plus a few per message for the chat
template): the catalogue gives prices, not a tokenizer. The cost is a range, because a reply
may use one completion token (a plain model answering "1") or all of max_tokens (a reasoning
model thinking first).
"""

from __future__ import annotations

from dataclasses import dataclass

from flipbench.providers.base import Pricing, estimate_prompt_tokens

__all__ = ["Plan", "estimate_prompt_tokens"]


@dataclass(frozen=True)
class Plan:
    """Calls still needed (every reply valid), the attempt cap, and the cost range."""

    conditions: int
    calls: int
    max_calls: int
    prompt_tokens: int
    max_tokens: int
    pricing: Pricing | None

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
        cost = self.cost_range()
        if cost is None:
            return text + "; no prices in the model catalogue, so no cost estimate"
        low, high = cost
        return (
            text + f"; estimated cost ${low:.4g}–${high:.4g} (≈{self.prompt_tokens} prompt tokens,"
            f" 1–{self.max_tokens} completion tokens per call, catalogue prices)"
        )
