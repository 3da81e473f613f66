"""Whole-answer exact rates against rejection sampling of free replies, on the embedded model.

The unbiased sampled reference for answers of several tokens (grammar-constrained decoding is
not one: it finishes any reply that merely starts like an answer, docs/experiments.md): sample
free replies (T = 1, neutral samplers, a few tokens each), keep those that *are* an answer —
one of its surface forms followed by the end of the reply or a non-word character, exactly
what the whole-answer reading sums — and compare the kept shares with the exact rates. At
SmolLM2's coverage (0.1–1 % of replies are a bare answer) this needs thousands of samples per
kept one hundred: a benchmark, not a test.

    .venv/bin/python bench/whole_answer_vs_rejection.py [--pair human/alien] [--kept 100]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter

from scipy.stats import binom

from flipbench.providers.base import SampleSettings, exact_distribution
from flipbench.providers.local import LocalBackend
from flipbench.providers.whole_answer import case_variants
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import Condition


def bare_answer(content: str, answers: tuple[str, ...]) -> str | None:
    """The answer a reply *is* (a surface form, then the end or a non-word character other
    than `%`), else None."""
    for answer in answers:
        forms = "|".join(re.escape(v) for v in case_variants(answer))
        if re.match(rf"^ ?(?:{forms})(?:$|(?![\w%]))", content):
            return answer
    return None


async def reject(
    backend: LocalBackend, condition: Condition, kept_target: int, max_samples: int
) -> tuple[Counter[str], int]:
    """Free replies (T = 1, up to 6 tokens, 8 per request, 4 requests in flight) until
    `kept_target` are bare answers or `max_samples` were drawn: (kept per answer, drawn)."""
    kept: Counter[str] = Counter()
    drawn = 0
    settings = SampleSettings(temperature=1.0, max_tokens=6)

    async def worker() -> None:
        nonlocal drawn
        while sum(kept.values()) < kept_target and drawn < max_samples:
            replies = await backend.sample_many(condition.messages, settings, 8)
            drawn += len(replies)
            for reply in replies:
                answer = bare_answer(reply.content or "", condition.answers)
                if answer is not None:
                    kept[answer] += 1

    await asyncio.gather(*(worker() for _ in range(4)))
    return kept, drawn


async def main(pair: str, kept_target: int, max_samples: int) -> None:
    experiment = get_experiment("word-bias").resolve()
    conditions = [c for c in experiment.conditions() if c.group == pair]
    backend = LocalBackend("local/smollm2")
    await backend.start(concurrency=4, exact=False)
    try:
        for condition in conditions:
            exact_reply = await backend.distribution(condition.messages, condition.answers)
            assert exact_reply.answer_logprobs is not None
            exact = exact_distribution(exact_reply.answer_logprobs, 1.0).renormalised
            started = time.perf_counter()
            kept, drawn = await reject(backend, condition, kept_target, max_samples)
            total = sum(kept.values())
            first = condition.first
            rate = kept[first] / total if total else float("nan")
            low, high = binom.ppf([0.005, 0.995], total, exact[first]) / max(total, 1)
            verdict = "agree" if low <= rate <= high else "DISAGREE"
            print(
                f"{condition.key}: exact {exact[first]:.3f}; rejection {rate:.3f} of {total} kept"
                f" ({drawn} drawn, {drawn / (time.perf_counter() - started):.0f}/s);"
                f" 99 % [{low:.3f}, {high:.3f}] {verdict}"
            )
    finally:
        await backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="human/alien")
    parser.add_argument("--kept", type=int, default=100)
    parser.add_argument("--max-samples", type=int, default=40_000)
    args = parser.parse_args()
    asyncio.run(main(args.pair, args.kept, args.max_samples))
