"""Poisson insertion (bayesian.md, Exp 5): definitions, the counting, the interval's coverage,
a planted rate recovered through the runner, the figure, and one real run on SmolLM2 (slow)."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flipbench.kinds.bayes_poisson import (
    PoissonMetrics,
    count_insertions,
    rate_interval,
)
from flipbench.parse import InvalidCategory, parse_reply
from flipbench.progress import SilentReporter
from flipbench.providers.base import Message, Reply, SampleSettings
from flipbench.report.run_figures import figures_for
from flipbench.results import RunResults, compute_results
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.bayes_needles import filler_words
from flipbench.tasks.bayes_poisson import CHARS, RATES, story_prefix
from flipbench.tasks.definition import ResolvedExperiment
from tests.cli_helpers import FLIPBENCH
from tests.fake_backend import InProcessBackend

# -- definitions -----------------------------------------------------------------------------


def test_the_explicit_variant_asks_for_each_rate_of_the_spec() -> None:
    conditions = get_experiment("bayes-poisson").resolve().conditions()
    assert [c.x for c in conditions] == [0.1, 0.3, 0.5, 0.7, 0.9]
    text = conditions[2].messages[0]["content"]
    assert "Poisson distribution with mean 0.5" in text and "§" in text
    chars = get_experiment("bayes-poisson").resolve(grid="chars").conditions()
    assert {c.messages[0]["content"].split("character ")[1][0] for c in chars} == set(CHARS)


def test_the_characters_do_not_occur_naturally_in_the_filler_or_the_prompts() -> None:
    text = " ".join(filler_words())
    for char in CHARS:
        assert char not in text
    icl = get_experiment("bayes-poisson-icl").resolve()
    for spec, condition in zip(icl.specs, icl.conditions(), strict=True):
        char = spec.fields["char"]
        others = set(CHARS) - {char}
        prompt = condition.raw_prompt or ""
        assert not others & set(prompt)
        # every copy in the prefix is a standalone insertion, as drawn
        counted = count_insertions(prompt, char, leading_gap=False)
        assert counted.insertions == int(spec.fields["prefix_insertions"])
        assert counted.gaps == int(spec.fields["prefix_gaps"]) and counted.attached == 0


def test_prefixes_are_drawn_from_the_recorded_seed_and_hold_the_rate() -> None:
    assert story_prefix("0.5", "§", 1) == story_prefix("0.5", "§", 1)
    assert story_prefix("0.5", "§", 1) != story_prefix("0.5", "§", 2)
    assert story_prefix("0.5", "§", 1) != story_prefix("0.5", "§", 1, seed=7)
    # over many prefixes the drawn rate is λ (59 gaps each)
    for lam in ("0.1", "0.9"):
        draws = [story_prefix(lam, "§", i) for i in range(1, 201)]
        rate = sum(d[1] for d in draws) / sum(d[2] for d in draws)
        assert rate == pytest.approx(float(lam), rel=0.1)
    chat = get_experiment("bayes-poisson-icl-chat").resolve().conditions()[0]
    assert chat.prefill == get_experiment("bayes-poisson-icl").resolve().conditions()[0].raw_prompt


def test_the_text_parser_keeps_any_visible_reply() -> None:
    assert parse_reply("Once § upon", (), "text").answer == "text"
    assert parse_reply("cut at max_tok", (), "text", finish_reason="length").valid
    assert parse_reply("  ", (), "text").category == InvalidCategory.EMPTY
    assert parse_reply(None, (), "text", finish_reason="length").category == (
        InvalidCategory.TRUNCATED
    )


# -- counting --------------------------------------------------------------------------------


def test_only_standalone_copies_inside_complete_gaps_count() -> None:
    c = count_insertions("Once § upon §§ a time§ there , § was §", "§", leading_gap=False)
    # gaps: Once|upon (1), upon|a (2), a|time§ (0), time§|there (0), there|was (1 after ",")
    assert (c.insertions, c.gaps, c.attached) == (4, 5, 1)
    # before the first word there is no gap (explicit); after the last, the gap is unfinished
    assert count_insertions("§ Once upon §", "§", leading_gap=False) == count_insertions(
        "Once upon", "§", leading_gap=False
    )
    # a continuation's first gap follows the prefix; glued onto its last word it does not
    assert count_insertions(" § Once upon", "§", leading_gap=True).gaps == 2
    glued = count_insertions("§ly § once", "§", leading_gap=True)
    assert (glued.insertions, glued.gaps, glued.attached) == (1, 1, 1)
    with pytest.raises(ValueError):
        count_insertions("a b", "ab", leading_gap=False)


words = st.lists(st.text(alphabet="abcXYZ019,.'\"", min_size=1).filter(lambda w: any(
    c.isalnum() for c in w)), min_size=1, max_size=40)  # fmt: skip


@given(words, st.lists(st.integers(0, 4), min_size=40, max_size=40), st.sampled_from(CHARS))
def test_planted_insertions_are_counted_exactly(
    chosen: list[str], counts: list[int], char: str
) -> None:
    parts = []
    for i, word in enumerate(chosen):
        parts.append(word)
        if i < len(chosen) - 1 and counts[i]:
            parts.append(char * counts[i])
    got = count_insertions(" ".join(parts), char, leading_gap=False)
    assert got.gaps == len(chosen) - 1 and got.attached == 0
    assert got.insertions == sum(counts[: len(chosen) - 1])


@given(st.text(max_size=300), st.sampled_from(CHARS), st.booleans())
def test_counting_never_fails_on_any_text(text: str, char: str, leading: bool) -> None:
    got = count_insertions(text, char, leading_gap=leading)
    assert 0 <= got.insertions <= text.count(char) and got.gaps <= len(text.split())


# -- the interval ----------------------------------------------------------------------------


def _coverage(lam: float, n: int, cv: float, sims: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(sims):
        gaps = rng.integers(20, 120, size=n)
        spread = rng.gamma(1 / cv**2, cv**2, size=n) if cv else np.ones(n)
        k = rng.poisson(lam * spread * gaps)
        rate, _ = rate_interval(k.tolist(), gaps.tolist())
        hits += rate.low <= lam <= rate.high
    return hits / sims


@pytest.mark.parametrize(
    ("lam", "n", "cv", "low"),
    [(0.1, 20, 0.0, 0.93), (0.9, 5, 0.0, 0.93), (0.3, 20, 0.5, 0.91), (0.5, 20, 1.0, 0.87)],
)
def test_the_95_percent_interval_covers_about_95_percent(
    lam: float, n: int, cv: float, low: float
) -> None:
    """Poisson replies and replies whose own rates vary (Gamma, coefficient of variation cv);
    400 simulated runs each (± 0.011 binomial sd). The module docstring has 2,000-run numbers."""
    coverage = _coverage(lam, n, cv, 400, seed=int(100 * lam) + n)
    assert low <= coverage <= 0.995


def test_a_plain_poisson_interval_would_not_cover_overdispersed_replies() -> None:
    """What the quasi-Poisson scaling is for: with φ forced to 1 the cv = 1 case drops far."""
    rng = np.random.default_rng(3)
    gaps = rng.integers(20, 120, size=20)
    k = rng.poisson(0.5 * rng.gamma(1.0, 1.0, size=20) * gaps)
    rate, phi = rate_interval(k.tolist(), gaps.tolist())
    assert phi > 5
    assert rate.high - rate.low > 2.5 * 3.92 * math.sqrt(rate.value / gaps.sum())


def test_no_insertions_give_zero_with_an_upper_bound() -> None:
    rate, phi = rate_interval([0, 0, 0], [50, 60, 70])
    assert (rate.value, rate.low, phi) == (0.0, 0.0, 1.0)
    assert rate.high == pytest.approx(3.689 / 180, rel=1e-3)  # Garwood: χ²(0.975, 2) / 2G
    assert math.isnan(rate_interval([], [])[0].value)


# -- a planted rate through the runner -------------------------------------------------------

VOCAB = ("the", "cat", "sat", "on", "a", "warm", "mat", "and", "slept,", "while", "rain", "fell.")


class Storyteller(InProcessBackend):
    """Writes stories inserting `char` at `plant(prompt)` per gap, each reply's own rate
    varying (Gamma, cv 0.4) as a real model's do, plus copies glued to words (not counted)."""

    prefix = "storyteller"
    supports_raw = True

    def __init__(self, plant: Callable[[str], tuple[float, str]], seed: int = 0) -> None:
        super().__init__("storyteller/test")
        self.plant = plant
        self.rng = np.random.default_rng(seed)

    def _story(self, prompt: str, leading: bool) -> Reply:
        lam, char = self.plant(prompt)
        rate = lam * self.rng.gamma(1 / 0.16, 0.16)
        parts = [] if leading else [str(self.rng.choice(VOCAB))]
        for _ in range(int(self.rng.integers(30, 90))):
            parts += [char] * int(self.rng.poisson(rate))
            word = str(self.rng.choice(VOCAB))
            parts.append(word + char if self.rng.random() < 0.02 else word)
        parts += [char] * 3  # after the last word: an unfinished gap
        text = (" " if leading else "") + " ".join(parts)
        reply = Reply({"prompt": prompt}, {"choices": []}, ok=True, http_status=200)
        reply.content, reply.finish_reason = text, "length"
        return reply

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        return self._story(" | ".join(m["content"] for m in messages), leading=False)

    async def sample_raw(self, prompt: str, settings: SampleSettings) -> Reply:
        return self._story(prompt, leading=True)


def _run(tmp_path: Path, experiment: ResolvedExperiment, backend: Storyteller) -> RunResults:
    journal = Journal(tmp_path / "j.db")
    journal.create_run(
        run_id="r", experiment=experiment.name, model="storyteller/test", mode="sample",
        config={}, definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    settings = RunSettings("sample", 4, False, 5.0, None)
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    return compute_results(journal, "r")


def _explicit_plant(prompt: str) -> tuple[float, str]:
    lam = float(prompt.split("mean ")[1].split(",")[0])
    char = prompt.split("character ")[1][0]
    return 0.6 * lam + 0.05, char  # under-inserts, as a model might


def test_a_planted_rate_is_recovered_within_its_interval(tmp_path: Path) -> None:
    experiment = get_experiment("bayes-poisson").resolve(n=30)
    results = _run(tmp_path, experiment, Storyteller(_explicit_plant, seed=11))
    metrics = results.metrics
    assert isinstance(metrics, PoissonMetrics)
    assert list(metrics.by_rate) == [f"lambda={r}" for r in RATES]
    covered = 0
    for r in metrics.by_rate.values():
        planted = 0.6 * r.requested + 0.05
        assert r.replies == 30 and r.attached > 0 and r.dispersion >= 1
        assert abs(r.rate.value - planted) < 0.1 * planted + 0.02
        covered += r.rate.low <= planted <= r.rate.high
    assert covered >= 4  # each interval is 95 %: 5 of 5 is likely, 4 of 5 allowed
    rows = {c.condition: c for c in results.conditions}
    assert rows["lambda=0.5"].rate == pytest.approx(metrics.conditions["lambda=0.5"].rate.value)
    assert any(line.startswith("lambda=0.9 (§): λ̂ ") for line in results.lines)


def test_in_context_rates_pool_sequences_and_show_the_prefix(tmp_path: Path) -> None:
    experiment = get_experiment("bayes-poisson-icl").resolve(n=8)
    prefixes = {c.raw_prompt: c.x for c in experiment.conditions()}

    def plant(prompt: str) -> tuple[float, str]:
        return prefixes[prompt], "§"  # a model that copies the requested rate

    results = _run(tmp_path, experiment, Storyteller(plant, seed=5))
    metrics = results.metrics
    assert isinstance(metrics, PoissonMetrics)
    assert len(metrics.conditions) == 20 and len(metrics.by_rate) == 5
    for r in metrics.by_rate.values():
        assert r.replies == 32 and r.prefix_rate is not None
        assert abs(r.rate.value - r.requested) < 0.12 * r.requested + 0.02
        assert abs(r.prefix_rate - r.requested) < 0.25 * r.requested + 0.05
    paths = figures_for(results, tmp_path / "figs")
    assert {p.name for p in paths} >= {"bayes_poisson.png", "bayes_poisson.svg"}
    assert (tmp_path / "figs" / "bayes_poisson.png").stat().st_size > 10_000


# -- one real run (slow) ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_run_on_smollm2_then_show(tmp_path: Path) -> None:
    """`flipbench run bayes-poisson-icl --model local/smollm2` then `show`, offline; one short
    continuation per condition of the `small` grid. Run it under the model lock."""
    journal = str(tmp_path / "j.db")
    start = time.monotonic()
    run = subprocess.run(
        [str(FLIPBENCH), "run", "bayes-poisson-icl", "--model", "local/smollm2", "--grid",
         "small", "--n", "1", "--max-tokens", "24", "--seed", "1", "--db", journal,
         "--run-id", "p"],
        capture_output=True, text=True, timeout=170, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert list(tmp_path.glob("flipbench-runs/p/bayes_poisson.png"))
    shown = subprocess.run([str(FLIPBENCH), "show", "p", "--db", journal, "--format", "json"],
                           capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    elapsed = time.monotonic() - start
    data = json.loads(shown.stdout)
    by_rate = data["metrics"]["by_rate"]
    assert set(by_rate) == {"lambda=0.1", "lambda=0.9"}
    for r in by_rate.values():
        assert r["replies"] == 1 and r["gaps"] > 0 and r["char"] == "§"
        assert 0 <= r["rate"]["low"] <= r["rate"]["value"] <= r["rate"]["high"]
    assert elapsed < 170
