"""The in-context reading in one pass against N separate prompts, on `hf/…` (issue 13.2).

For a flip sequence `{stem}heads, then tails, then …, then ` the model's P(heads) after every
prefix length k = 0…N can be read as N + 1 separate prompts (each prompt's pass computed on
its own), or from ONE forward pass over the longest prompt, at each answer position
(`HFModel.prefix_choice_probs`). Both are measured here in the same process, one after the
other, best of `--repeats` each (absolute times are noisy on shared 2-core machines; the ratio
is what to compare), and their readings compared (they agree within float32 noise, ~3e-6).

    .venv/bin/python bench/hf_prefix_pass.py [--model hf/smollm2] [--flips 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import time

from flipbench.config import available_cores
from flipbench.providers.hf import load_model
from flipbench.providers.hf_choices import resolve_source

STEM = "I tossed a coin and it landed on "
SEPARATOR = ", then "
CHOICES = ("heads", "tails")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hf/smollm2")
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    started = time.perf_counter()
    model = load_model(resolve_source(args.model), threads=available_cores())
    converted = model.versions.get("converted_now")
    print(f"load: {time.perf_counter() - started:.1f} s (converted now: {converted})")
    rng = random.Random(args.seed)
    # θ = 0.75, the first half of the posterior chain (bayesian.md, experiment 4).
    flips = ["heads" if rng.random() < 0.75 else "tails" for _ in range(args.flips)]
    prompts = [STEM + "".join(f + SEPARATOR for f in flips[:k]) for k in range(args.flips + 1)]
    tokens = len(model.encode(prompts[-1].rstrip()))

    def separate() -> list[float]:
        return [model.score_choices(p, CHOICES).renormalised["heads"] for p in prompts]

    def one_pass() -> list[float]:
        readings = model.prefix_choice_probs(STEM, flips, CHOICES, SEPARATOR)
        return [r.renormalised["heads"] for r in readings]

    times: dict[str, float] = {}
    values: dict[str, list[float]] = {}
    for name, read in (("separate", separate), ("one pass", one_pass)):
        best = float("inf")
        for _ in range(args.repeats):
            passes = model.forward_passes
            t0 = time.perf_counter()
            values[name] = read()
            best = min(best, time.perf_counter() - t0)
            count = model.forward_passes - passes
        times[name] = best
        print(f"{name:>9}: {best:7.3f} s for {args.flips + 1} readings, {count} forward pass(es)")
    diff = max(abs(a - b) for a, b in zip(values["separate"], values["one pass"], strict=True))
    print(
        f"saving: {times['separate'] / times['one pass']:.1f}x faster in one pass"
        f" ({args.flips} flips, longest prompt {tokens} tokens, {available_cores()} threads);"
        f" largest P(heads) difference {diff:.2e}"
    )


if __name__ == "__main__":
    main()
