"""The Bayesian battery's priors and needles (bayesian.md Exp 1–2, issue 13 points 3–4).

Definitions render exactly the spec's prompts; a scripted backend with planted distributions
runs each experiment through the runner and the `bayes-bias` kind computes the right numbers;
the slow tests read the coin needle on the embedded SmolLM2 through both exact backends, and
show the bf16 quantisation the Berkeley code suffered against flipbench's float32 default.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.progress import SilentReporter
from flipbench.providers.base import Message, Reply, SampleSettings
from flipbench.report.run_figures import figures_for
from flipbench.results import RunResults, compute_results
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.bayes_needles import filler_words, haystack, sentence_ends
from flipbench.tasks.bayes_priors import PARAPHRASES
from flipbench.tasks.definition import ResolvedExperiment
from tests.fake_backend import InProcessBackend

from flipbench.kinds.bayes_bias import BayesBiasMetrics  # isort: skip

COIN_ASK = "Please toss a coin and tell me whether it landed on heads or tails."


# -- definitions -----------------------------------------------------------------------------


def test_priors_render_the_spec_prompts_in_both_framings() -> None:
    base = get_experiment("bayes-prior-coin").resolve().conditions()
    assert [c.raw_prompt for c in base] == ["I tossed a coin and it landed on"]
    assert base[0].messages == () and base[0].target == {"heads": 0.5, "tails": 0.5}
    chat = get_experiment("bayes-prior-coin-chat").resolve().conditions()[0]
    assert chat.messages == (
        {"role": "user", "content": COIN_ASK},
        {"role": "assistant", "content": "I tossed a coin and it landed on"},
    )
    assert chat.prefill == "I tossed a coin and it landed on" and chat.raw_prompt is None
    die = get_experiment("bayes-prior-die-chat").resolve().conditions()[0]
    assert [m["content"] for m in die.messages] == [
        "Please roll a six-sided die and tell me what number it landed on.",
        "I rolled a die and it landed on",
    ]
    assert die.answers == ("1", "2", "3", "4", "5", "6") and die.x == pytest.approx(1 / 6)
    number = get_experiment("bayes-prior-number").resolve().conditions()[0]
    assert number.raw_prompt == "I picked a random number between 1 and 10 and it was"
    assert number.answers[-1] == "10" and sum((number.target or {}).values()) == pytest.approx(1)
    chat_number = get_experiment("bayes-prior-number-chat").resolve().conditions()[0]
    assert chat_number.messages[0]["content"] == "Please pick a random number between 1 and 10."


def test_the_paraphrase_grid_ships_at_least_twenty_distinct_coin_stems() -> None:
    conditions = get_experiment("bayes-prior-coin").resolve(grid="paraphrases").conditions()
    stems = [c.raw_prompt for c in conditions]
    assert len(stems) == len(set(stems)) == len(PARAPHRASES) >= 20
    assert stems[0] == "I tossed a coin and it landed on"
    assert (
        "The result of my coin flip is" in stems and "After tossing the coin, it landed on" in stems
    )
    assert all(s and not s.endswith(" ") for s in stems)  # the answer's token brings its space
    assert {c.group for c in conditions} == {"coin"}
    chat = get_experiment("bayes-prior-coin-chat").resolve(grid="paraphrases").conditions()
    assert [c.prefill for c in chat] == stems


def test_needles_render_the_spec_sentences() -> None:
    coin = get_experiment("bayes-needle-coin").resolve().conditions()
    assert [c.key for c in coin] == [f"b={b}" for b in range(0, 101, 10)]
    assert coin[3].raw_prompt == (
        "When I flip coins they land on heads 30% of the time. I tossed a coin and it landed on"
    )
    assert coin[3].target is not None
    assert [coin[3].target[a] for a in ("heads", "tails")] == pytest.approx([0.3, 0.7])
    chat = get_experiment("bayes-needle-coin-chat").resolve().conditions()[7]
    assert chat.messages[0]["content"] == (
        "When you flip coins, they land on heads 70% of the time. " + COIN_ASK
    )
    assert chat.prefill == "I tossed a coin and it landed on"
    die = get_experiment("bayes-needle-die").resolve().conditions()[2]
    assert die.raw_prompt == (
        "When I roll dice they land on 6 20% of the time. I rolled a die and it landed on"
    )
    assert die.first == "6" and die.target is not None
    assert die.target["6"] == pytest.approx(0.2) and die.target["1"] == pytest.approx(0.16)
    faces = get_experiment("bayes-needle-die").resolve(grid="faces").conditions()
    assert {c.first for c in faces} == set("123456") and len(faces) == 18
    number = {c.key: c for c in get_experiment("bayes-needle-number").resolve().conditions()}
    assert number["even"].raw_prompt == (
        "When I pick random numbers, they are always even. I picked a random number between 1"
        " and 10 and it was"
    )
    assert number["none"].raw_prompt == "I picked a random number between 1 and 10 and it was"
    assert number["odd"].target is not None and number["odd"].target["3"] == pytest.approx(0.2)
    assert number["odd"].target["10"] == 0


def test_the_filler_is_packaged_and_the_needle_sits_at_a_sentence_end() -> None:
    words = filler_words()
    assert len(words) > 2500 and words[:3] == ("Alice", "was", "beginning")
    ends = set(sentence_ends(words))
    needle = "NEEDLE."
    for length in (250, 1000, 2000):
        for depth in (0.0, 0.5, 1.0):
            text = haystack(length, depth, needle).split()
            cut = text.index(needle)
            assert cut in ends and length <= len(text) - 1 <= length + 80
            assert abs(cut - depth * (len(text) - 1)) <= 80  # the nearest sentence end
    assert haystack(0, 0.5, needle) == needle
    grid = get_experiment("bayes-needle-depth").resolve(grid="long").conditions()
    assert len(grid) == 1 + 4 * 5 and {c.x for c in grid} == {0.8}
    assert len(get_experiment("bayes-needle-depth").resolve().conditions()) == 1 + 3 * 5
    assert grid[0].raw_prompt == get_experiment("bayes-needle-coin").resolve(
    ).conditions()[8].raw_prompt  # fmt: skip
    deepest = next(c for c in grid if c.key == "L=2000 d=1")
    assert (deepest.raw_prompt or "").endswith(
        "currants. When I flip coins they land on heads 80% of the time. I tossed a coin and it"
        " landed on"
    )


# -- planted distributions through the runner --------------------------------------------------


class Planted(InProcessBackend):
    """Exact readings planted by prompt: `plant(text)` gives each answer's probability (the
    raw log-probabilities sum to half, so coverage is 0.5)."""

    prefix = "planted"
    supports_exact = True
    supports_raw = True

    def __init__(self, plant: Callable[[str], dict[str, float]]) -> None:
        super().__init__("planted/test")
        self.plant = plant

    def _reply(self, text: str, answers: Sequence[str]) -> Reply:
        shares = self.plant(text)
        reply = Reply({"prompt": text}, {"choices": []}, ok=True, http_status=200)
        reply.answer_logprobs = {a: [math.log(0.5 * shares[a])] if shares.get(a) else []
                                 for a in answers}  # fmt: skip
        return reply

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        raise AssertionError("exact only")

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        return self._reply(" | ".join(m["content"] for m in messages), answers)

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        return self._reply(prompt, answers)


def _run(tmp_path: Path, experiment: ResolvedExperiment, plant: Any) -> RunResults:
    journal = Journal(tmp_path / "j.db")
    journal.create_run(
        run_id="r", experiment=experiment.name, model="planted/test", mode="exact", config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    settings = RunSettings("exact", 1, False, 5.0, None)
    backend = Planted(plant)
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    return compute_results(journal, "r")


def _coin(p: float) -> dict[str, float]:
    return {"heads": p, "tails": 1 - p}


def test_prior_spread_over_stems_is_their_mean_and_sd(tmp_path: Path) -> None:
    planted = {s: 0.30 + 0.03 * i for i, s in enumerate(PARAPHRASES)}
    experiment = get_experiment("bayes-prior-coin-chat").resolve(grid="paraphrases")
    results = _run(tmp_path, experiment, lambda text: _coin(planted[text.split(" | ")[-1]]))
    metrics = results.metrics
    assert isinstance(metrics, BayesBiasMetrics)
    values = np.array(list(planted.values()))
    spread = metrics.spread["coin"]
    assert spread.n == 22 and spread.mean == pytest.approx(values.mean())
    assert spread.sd == pytest.approx(values.std(ddof=1)) and spread.target == 0.5
    assert [spread.low, spread.high] == pytest.approx([0.30, 0.93])
    assert metrics.per_condition["01"].tv.value == pytest.approx(0.20)
    assert math.isnan(results.s)  # every stem asks x = 0.5: no curve
    assert all(c.coverage == pytest.approx(0.5) for c in results.conditions)
    assert results.lines[0] == (
        'coin: P("heads") over 22 stems: mean 0.615 ± sd 0.195 (min 0.300, max 0.930; target 0.500)'
    )
    paths = figures_for(results, tmp_path / "fig")
    assert {p.name for p in paths} == {"prior_spread_coin.png", "prior_spread_coin.svg"}
    assert "The coin fell to the floor and" in (tmp_path / "fig/prior_spread_coin.svg").read_text()


def _stated(text: str) -> float:
    found = re.search(r"(\d+)% of the time", text)
    return int(found[1]) / 100 if found else 0.5


def test_the_needle_curve_reads_p_heads_against_b(tmp_path: Path) -> None:
    """A model that halves the way from 50 % to the stated b: TV = |b − 0.5| / 2."""
    experiment = get_experiment("bayes-needle-coin").resolve()
    results = _run(tmp_path, experiment, lambda text: _coin(0.5 + (_stated(text) - 0.5) / 2))
    metrics = results.metrics
    assert isinstance(metrics, BayesBiasMetrics)
    for b in range(0, 101, 10):
        assert metrics.first_rate[f"b={b}"] == pytest.approx(0.5 + (b / 100 - 0.5) / 2)
        assert metrics.per_condition[str(b)].tv.value == pytest.approx(abs(b / 100 - 0.5) / 2)
    # S = 4 ∫|r − p| = 4 ∫ |p − 0.5| / 2 dp = 0.5 on a linear r.
    assert results.s == pytest.approx(0.5, abs=1e-9) and not metrics.spread
    assert metrics.support_mass["b=0"] == pytest.approx(0.75)  # P(tails): the allowed answer
    names = {p.name for p in figures_for(results, tmp_path / "fig")}
    assert {"needle_curve.png", "answer_shares.png"} <= names


def test_die_and_parity_needles_score_the_face_and_the_support(tmp_path: Path) -> None:
    def die(text: str) -> dict[str, float]:
        b = _stated(text)
        return {f: (b if f == "6" else (1 - b) / 5) for f in "123456"}  # exactly as asked

    results = _run(tmp_path, get_experiment("bayes-needle-die").resolve(), die)
    assert isinstance(results.metrics, BayesBiasMetrics)
    assert results.metrics.mean_tv == pytest.approx(0, abs=1e-12) and results.s == pytest.approx(0)

    def parity(text: str) -> dict[str, float]:  # 70 % on 2, the rest spread over 1, 3, …, 9
        odd = {str(n): 0.3 / 5 for n in (1, 3, 5, 7, 9)}
        return {**odd, "2": 0.7} if "always" in text else {str(n): 0.1 for n in range(1, 11)}

    (tmp_path / "n").mkdir()
    results = _run(tmp_path / "n", get_experiment("bayes-needle-number-chat").resolve(), parity)
    metrics = results.metrics
    assert isinstance(metrics, BayesBiasMetrics)
    assert metrics.support_mass["even"] == pytest.approx(0.7)
    assert metrics.support_mass["odd"] == pytest.approx(0.3)
    # TV = ½ (|0.7 − 0.2| + 4 × 0.2 + 5 × 0.06) against uniform over 2, 4, …, 10.
    assert metrics.per_condition["even"].tv.value == pytest.approx(0.8)
    assert metrics.per_condition["odd"].tv.value == pytest.approx(0.7)
    assert metrics.per_condition["none"].tv.value == pytest.approx(0.0, abs=1e-12)
    assert any('even: P("1") 0.060, on the requested support 0.700' in x for x in results.lines)


def test_depth_cells_lay_out_length_by_depth(tmp_path: Path) -> None:
    """Planted: the needle counts fully at depth 1 and fades with the words after it."""

    def plant(text: str) -> dict[str, float]:
        words = text.split()
        at = next(i for i in range(len(words)) if words[i : i + 3] == ["When", "I", "flip"])
        after = len(words) - at - 20  # words between the needle and the question
        return _coin(0.5 + 0.3 * math.exp(-after / 500))

    results = _run(tmp_path, get_experiment("bayes-needle-depth").resolve(grid="long"), plant)
    metrics = results.metrics
    assert isinstance(metrics, BayesBiasMetrics) and metrics.depth_cells is not None
    cells = {(c.length, c.depth): c for c in metrics.depth_cells}
    assert len(cells) == 21 and cells[(0, 0.0)].error == pytest.approx(0)
    assert cells[(2000, 1.0)].error == pytest.approx(0) and cells[(2000, 1.0)].requested == 0.8
    assert cells[(2000, 0.0)].error > cells[(2000, 0.5)].error > cells[(1000, 0.5)].error
    assert cells[(2000, 0.0)].error == pytest.approx(0.3 * (1 - math.exp(-2020 / 500)), 0.01)
    assert cells[(250, 0.5)].tv == pytest.approx(cells[(250, 0.5)].error)
    assert results.lines[0].startswith("mean |P(heads) − b| by filler length (words): L=0 0.000")
    names = {p.name for p in figures_for(results, tmp_path / "fig")}
    assert names == {"needle_heatmap.png", "needle_heatmap.svg"}


# -- the embedded model ------------------------------------------------------------------------


def _needle_rates(tmp_path: Path, model: str, **options: Any) -> tuple[RunResults, list[float]]:
    config = RunConfig(experiment="bayes-needle-coin", model=model, mode="exact",
                       run_id=f"r-{len(list(tmp_path.iterdir()))}", threads=1,
                       backend_options=options)  # fmt: skip
    outcome = start_run(config, tmp_path / "j.db")
    assert outcome.status == "complete" and outcome.results is not None
    return outcome.results, [c.rate for c in outcome.results.conditions]


@pytest.mark.slow
def test_the_coin_needle_on_both_exact_backends(tmp_path: Path) -> None:
    """hf/ and local/ read the same GGUF: close readings, and what SmolLM2-135M does with a
    stated bias (it ignores it: P(heads) stays near 0.2 whatever b is)."""
    hf, hf_rates = _needle_rates(tmp_path, "hf/smollm2")
    _, local_rates = _needle_rates(tmp_path, "local/smollm2")
    assert len(hf_rates) == len(local_rates) == 11
    for a, b in zip(hf_rates, local_rates, strict=True):
        assert abs(a - b) <= 0.06
    assert all(c.coverage is not None and c.coverage > 0.5 for c in hf.conditions)
    slope = np.polyfit(np.linspace(0, 1, 11), hf_rates, 1)[0]
    assert abs(slope) < 0.2 and hf.s > 1.0  # no rise with b: far from the diagonal
    assert hf.run.versions["model"]["dtype"] == "float32"


def _top_probabilities(dtype: str, prompts: Sequence[str], top: int = 200) -> list[float]:
    """The `top` largest next-token probabilities after each prompt, with the log-softmax in
    the weights' dtype, as the Berkeley code computed it (flipbench's own reading takes it in
    float32 whatever the dtype)."""
    import torch

    from flipbench.providers.hf import load_model
    from flipbench.providers.hf_choices import HFOptions, resolve_source

    model = load_model(resolve_source("hf/smollm2"), HFOptions(dtype=dtype), threads=1)
    values: list[float] = []
    for prompt in prompts:
        with torch.inference_mode():
            logits = model.model(input_ids=torch.tensor([model.encode(prompt)])).logits[0, -1]
        values += torch.log_softmax(logits, dim=-1).exp().topk(top).values.float().tolist()
    return values


@pytest.mark.slow
def test_bf16_quantises_the_needle_grid_and_float32_is_the_default(tmp_path: Path) -> None:
    """The Berkeley code's bf16 log-softmax quantised every probability to a few values. Over
    the needle grid's 11 prompts × the 200 likeliest next tokens, bf16 leaves far fewer
    distinct probabilities than float32; flipbench runs float32 unless told otherwise (and
    records it), so its P(heads) differs at every b."""
    results, rates = _needle_rates(tmp_path, "hf/smollm2")
    assert results.run.versions["model"]["dtype"] == "float32" and len(set(rates)) == 11
    prompts = [c.raw_prompt or "" for c in results.experiment.conditions()]
    f32 = _top_probabilities("float32", prompts)
    bf16 = _top_probabilities("bfloat16", prompts)
    assert len(f32) == len(bf16) == 11 * 200
    assert len(set(bf16)) * 4 < len(set(f32)), (len(set(bf16)), len(set(f32)))
    assert len(set(f32)) > 0.95 * len(f32)
