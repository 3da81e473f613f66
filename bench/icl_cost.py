"""What one pass per in-context sequence saves on `hf/…` (issue 13.2; the posterior chain).

The posterior chain (`bayes-chain`) reads P(heads) after every prefix k = 0…L of one flip
sequence. Three ways to read it, timed in one process on the experiment's own chat prompts:

* **whole answers** — what `--mode exact` runs today: one condition at a time,
  `HFModel.whole_answers` (every surface form of heads/tails and the stop mass after it);
* **separate** — the same one-token choices as the one-pass reading, one prompt per prefix
  (`HFModel.score_choices`): L + 1 forward passes;
* **one pass** — `HFModel.prefix_choice_probs`: the logits at each answer position of the
  longest prompt, ONE forward pass.

"separate" and "one pass" read the same quantity and must agree to 1e-5 (float32 shapes
differ; tests/test_hf.py holds the bar); the ratio of their wall times is the saving. Whole
answers read a different quantity (all surface forms, times the stop factor) and are timed for
scale only. Best of `--repeats` for the two fast readings; absolute times are noisy on shared
machines, the ratios are what to compare.

    .venv/bin/python bench/icl_cost.py [--model hf/smollm2] [--sequence 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

from flipbench.config import available_cores
from flipbench.providers.hf import load_model
from flipbench.providers.hf_choices import resolve_source
from flipbench.tasks import get_experiment

SEPARATOR = ", then "
CHOICES = ("heads", "tails")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hf/smollm2")
    parser.add_argument("--grid", default="default", help="bayes-chain grid")
    parser.add_argument("--sequence", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-whole", action="store_true", help="skip the whole-answer timing")
    args = parser.parse_args()

    started = time.perf_counter()
    model = load_model(resolve_source(args.model), threads=available_cores())
    print(f"load: {time.perf_counter() - started:.1f} s")
    chain = get_experiment("bayes-chain").resolve(grid=args.grid)
    chosen = [
        (c, s) for c, s in zip(chain.conditions(), chain.specs, strict=True)
        if s.fields["sequence"] == str(args.sequence)
    ]  # fmt: skip
    conditions = [c for c, _ in chosen]
    flips = chosen[0][1].fields["sequence_flips"]
    items = ["heads" if f == "H" else "tails" for f in flips]
    # The chat prompt up to the first answer; prompt k adds k items, each with the separator.
    stem = model.render(conditions[0].messages) + " "
    prompts = [stem + "".join(i + SEPARATOR for i in items[:k]) for k in range(len(items) + 1)]
    assert prompts[-1].rstrip() == model.render(conditions[-1].messages)
    tokens = len(model.encode(prompts[-1].rstrip()))

    def separate() -> list[float]:
        return [model.score_choices(p, CHOICES).renormalised["heads"] for p in prompts]

    def one_pass() -> list[float]:
        readings = model.prefix_choice_probs(stem, items, CHOICES, SEPARATOR)
        return [r.renormalised["heads"] for r in readings]

    def whole() -> list[float]:
        out = []
        for c in conditions:
            read = model.whole_answers(model.render(c.messages), CHOICES)
            lps = read.answer_logprobs(CHOICES)
            mass = {a: sum(math.exp(lp) for lp in v) for a, v in lps.items()}
            out.append(mass["heads"] / (mass["heads"] + mass["tails"]))
        return out

    readings: list[tuple[str, Callable[[], list[float]], int]] = [
        ("one pass", one_pass, args.repeats),
        ("separate", separate, args.repeats),
    ]
    if not args.no_whole:
        readings.append(("whole answers", whole, 1))
    times: dict[str, float] = {}
    values: dict[str, list[float]] = {}
    for name, read, repeats in readings:
        best, count = float("inf"), 0
        for _ in range(repeats):
            passes = model.forward_passes
            t0 = time.perf_counter()
            values[name] = read()
            best = min(best, time.perf_counter() - t0)
            count = model.forward_passes - passes
        times[name] = best
        print(f"{name:>13}: {best:7.3f} s for {len(prompts)} readings, {count} forward pass(es)")
    diff = max(abs(a - b) for a, b in zip(values["separate"], values["one pass"], strict=True))
    print(
        f"ratio separate / one pass: {times['separate'] / times['one pass']:.1f}x"
        f" ({len(items)} flips, longest prompt {tokens} tokens, {available_cores()} threads);"
        f" largest P(heads) difference {diff:.2e}"
    )
    if "whole answers" in times:
        print(
            f"ratio whole answers (exact mode today) / one pass:"
            f" {times['whole answers'] / times['one pass']:.1f}x"
        )


if __name__ == "__main__":
    main()
