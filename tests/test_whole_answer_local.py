"""The embedded model for real: whole-answer exact rates agree with grammar-constrained
sampling (N = 300, 99 % binomial intervals) where the answers are one token each (the single
flip, the ternary draw: there constrained decoding is renormalising over the answers); words
split into several tokens are read whole ("Luxury" = L|ux|ury), not by their first token.

For words, grammar-constrained sampling is no reference: it normalises token by token, so a
reply that merely starts like an answer ("A…", "M…") is forced to finish as one. Measured on
the named pairs (N = 300, a grammar of the answers' case variants): human/alien forward,
exact 0.95 human against 0.38 constrained; woman/man 0.58 against 0.11; cat/dog 0.86 against
0.56 (docs/experiments.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy.stats import binom

from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.store import Journal
from flipbench.tasks import EXPERIMENTS, get_experiment

pytestmark = pytest.mark.slow
N = 300


def _agree(tmp_path: Path, experiment: str, values: list[str] | None) -> None:
    db = tmp_path / "j.db"
    exact = start_run(
        RunConfig(experiment=experiment, p_values=values, mode="exact", run_id="exact"), db
    )
    sampled = start_run(
        RunConfig(experiment=experiment, p_values=values, mode="sample", constrained=True,
                  n=N, seed=2026, run_id="sampled"),
        db,
    )  # fmt: skip
    assert exact.results is not None and sampled.results is not None
    for e, s in zip(exact.results.conditions, sampled.results.conditions, strict=True):
        assert e.condition == s.condition and s.n_valid == N
        low, high = binom.ppf([0.005, 0.995], N, e.rate) / N
        print(f"{experiment} {e.condition}: exact {e.rate:.3f} (coverage {e.coverage:.3g}),"
              f" sampled {s.rate:.3f}, 99 % [{low:.3f}, {high:.3f}]")  # fmt: skip
        assert low <= s.rate <= high, (e.condition, e.rate, e.coverage, s.rate, low, high)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    ("experiment", "values"), [("single-flip", ["10", "50", "90"]), ("ternary", ["0", "30", "60"])]
)
def test_whole_answer_rates_agree_with_constrained_sampling(
    tmp_path: Path, experiment: str, values: list[str]
) -> None:
    _agree(tmp_path, experiment, values)


@pytest.fixture
def luxury() -> Iterator[str]:
    """word-bias cut to luxury/affordable (both orders), under its own name."""
    full = get_experiment("word-bias")
    specs = tuple(s for s in full.grids["default"] if s.group == "luxury/affordable")
    cut = full.model_copy(update={"name": "word-bias-luxury", "grids": {"default": specs}})
    EXPERIMENTS[cut.name] = cut
    yield cut.name
    del EXPERIMENTS[cut.name]


def test_words_split_at_one_letter_are_read_whole(tmp_path: Path, luxury: str) -> None:
    """The issue's example: the first-token reading gives luxury/affordable 0.006/0.997 from
    tokenisation alone ("Luxury" = L|ux|ury: the "L" is not credited); whole answers read
    "Luxury" through all three tokens and its stop, and the pair comes out near 2:1."""
    db = tmp_path / "j.db"
    runs = {}
    for first_token in (False, True):
        config = RunConfig(experiment=luxury, mode="exact", first_token=first_token,
                           run_id=f"first-{first_token}")  # fmt: skip
        runs[first_token] = start_run(config, db).results
    whole, first = runs[False], runs[True]
    assert whole is not None and first is not None
    key = "luxury/affordable:forward"
    (w,) = [c for c in whole.conditions if c.condition == key]
    (f,) = [c for c in first.conditions if c.condition == key]
    print(f"{key}: whole answers {w.rate:.3f}, first token {f.rate:.3f}")
    assert f.rate < 0.05 and w.rate > 0.3
    with Journal(db, create=False) as journal:
        row = next(r for r in journal.samples("first-False") if r["condition"] == key)
    forms = {x["form"]: x for x in json.loads(row["meta_json"])["whole_answer"]["forms"]}
    luxury_form = forms["Luxury"]
    tokens, logprobs = luxury_form["tokens"], luxury_form["token_logprobs"]
    assert len(tokens) == 3 and all(lp is not None for lp in logprobs)
    assert luxury_form["logprob"] == pytest.approx(sum(logprobs) + luxury_form["stop_logprob"])


def test_a_conditions_reading_does_not_depend_on_the_conditions_read_before(tmp_path: Path) -> None:
    """Each condition's first request computes its prompt afresh: the 50 % condition reads the
    same after 10 % as after 90 % (the cache alone would move it by up to ~0.1 in log-prob).
    Same to 1e-9, not bit for bit: a stop mass is read through the sampler's float32 softmax,
    whose sum carries ~1e-10 of jitter from one request to the next (measured 6e-11)."""
    db = tmp_path / "j.db"
    rates = []
    for before in ("10", "90"):
        run = start_run(
            RunConfig(experiment="single-flip", p_values=[before, "50"], mode="exact",
                      run_id=f"after-{before}"),
            db,
        )  # fmt: skip
        assert run.results is not None
        (fifty,) = [c for c in run.results.conditions if c.condition == "p=50"]
        rates.append((fifty.rate, fifty.coverage))
    assert rates[0] == pytest.approx(rates[1], abs=1e-9, rel=0)


@pytest.mark.timeout(600)
def test_stop_masses_read_without_the_vocabulary_equal_the_widened_lists() -> None:
    """The stop factor from two post-sampling requests (`llama_reading`) against the same
    reading with every slack removed by widening the list to the whole vocabulary: the same
    rates within 1e-6 on one-token answers, words split at one letter and six faces — and
    fewer seconds (printed)."""
    import asyncio
    import math
    import time

    from flipbench.providers.llama_reading import LlamaNextTokens, WordEnds
    from flipbench.providers.local import LocalBackend
    from flipbench.providers.whole_answer import read_whole_answers

    cases = [
        ("Flip a biased coin that lands 1 with probability 30%. Answer 0 or 1 only.", ["0", "1"]),
        (
            "Pick one word: luxury or affordable. Answer with the word only.",
            ["luxury", "affordable"],
        ),
        ("Roll a fair die. Answer with the face only.", ["1", "2", "3", "4", "5", "6"]),
    ]

    async def go() -> None:
        backend = LocalBackend("local/smollm2")
        await backend.start(concurrency=1, exact=True)
        words = WordEnds()
        try:
            for question, answers in cases:
                rates, seconds = [], []
                for ends in (words, None):
                    llama = LlamaNextTokens(backend._native_client(), 49152, word_ends=ends)
                    prompt = await llama.render([{"role": "user", "content": question}])
                    started = time.perf_counter()
                    whole = await read_whole_answers(llama, prompt, answers)
                    seconds.append(time.perf_counter() - started)
                    found = whole.answer_logprobs(answers)
                    mass = {a: sum(math.exp(x) for x in found[a]) for a in answers}
                    rates.append({a: m / sum(mass.values()) for a, m in mass.items()})
                    assert (whole.stop_masses > 0) == (ends is not None)
                print(f"{answers}: stop masses {seconds[0]:.2f} s, widened {seconds[1]:.2f} s")
                for a in answers:
                    assert rates[0][a] == pytest.approx(rates[1][a], abs=1e-6), (a, rates)
        finally:
            await backend.close()

    asyncio.run(go())
