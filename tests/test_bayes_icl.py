"""In-context evidence and the posterior chain (issue 13, points 3–4): the sequences as data,
the kind's numbers on synthetic models whose answers are known, the figures, and (slow) the
acceptance check that `hf/smollm2` and `local/smollm2` read the same P(heads)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flipbench import bayes
from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.kinds import get_kind
from flipbench.kinds.bayes_icl import BayesMetrics
from flipbench.report.run_figures import figures_for
from flipbench.results import RunResults, compute_results
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import EXPERIMENTS, get_experiment
from flipbench.tasks.bayes_icl import (
    BAYES_ICL,
    LENGTHS,
    SEED,
    chain_points,
    draw_flips,
    flips_text,
    icl_grid,
)
from flipbench.tasks.definition import ResolvedExperiment
from flipbench.testing.fault_server import FaultConfig, running_in_thread

#: P(heads) of a synthetic model from a condition's prompt fields.
Model = Callable[[dict[str, str]], float]


def exact_run(journal: Journal, run_id: str, experiment: ResolvedExperiment, model: Model) -> None:
    """Journal an exact run whose every reading is `model`'s P(heads) (coverage 0.5)."""
    journal.create_run(
        run_id=run_id, experiment=experiment.name, model="synthetic/bayes", mode="exact",
        config={}, definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    for spec in experiment.specs:
        p = model(spec.fields)
        journal.record(
            run_id,
            SampleRecord(
                condition=spec.key, sample_index=0, status="ok", request={}, response={},
                valid=True, probs={"heads": p, "tails": 1 - p}, coverage=0.5,
            ),
        )  # fmt: skip


def bayesian(alpha0: float, beta0: float) -> Model:
    def model(fields: dict[str, str]) -> float:
        h, t = int(fields["heads"]), int(fields["tails"])
        return (alpha0 + h) / (alpha0 + beta0 + h + t)

    return model


def run_of(tmp_path: Path, experiment: ResolvedExperiment, model: Model) -> RunResults:
    tmp_path.mkdir(parents=True, exist_ok=True)
    journal = Journal(tmp_path / "j.db")
    exact_run(journal, "r", experiment, model)
    return compute_results(journal, "r")


def metrics_of(results: RunResults) -> BayesMetrics:
    assert isinstance(results.metrics, BayesMetrics)
    return results.metrics


def custom(name: str, specs: tuple[object, ...]) -> ResolvedExperiment:
    base = get_experiment(name).resolve(grid="small")
    return base.model_copy(update={"specs": specs, "grid": "custom"})


# -- the sequences as data ---------------------------------------------------------------------


def test_sequences_are_nested_seeded_and_hashed() -> None:
    icl = BAYES_ICL.resolve()
    specs = {s.key: s.fields for s in icl.specs}
    assert len(icl.specs) == 704 and icl.params["seed"] == str(SEED)
    for theta in ("0", "30", "100"):
        for index in (1, 2, 3):
            histories = [specs[f"t={theta},n={n},s={index},none"]["history"] for n in LENGTHS[1:]]
            for short, long in itertools.pairwise(histories):
                assert long.startswith(short) and len(long) > len(short)
    assert set(specs["t=0,n=100,s=1,none"]["history"]) == {"T"}
    assert set(specs["t=100,n=100,s=2,none"]["history"]) == {"H"}
    # Independent sequences differ; the draw is the recorded seed's, not the process's.
    assert specs["t=50,n=20,s=1,none"]["history"] != specs["t=50,n=20,s=2,none"]["history"]
    assert draw_flips(SEED, "icl:50", 1, ("50",), 20) == specs["t=50,n=20,s=1,none"]["history"]
    assert draw_flips(SEED + 1, "icl:50", 1, ("50",), 20) != specs["t=50,n=20,s=1,none"]["history"]
    # Share of heads over all θ = 70 % flips drawn: about 0.7.
    drawn = "".join(specs[f"t=70,n=100,s={i},none"]["history"] for i in (1, 2, 3))
    assert abs(drawn.count("H") / 300 - 0.7) < 0.1
    fields = specs["t=30,n=5,s=2,agreeing"]
    assert int(fields["heads"]) + int(fields["tails"]) == 5
    assert fields["flips"] == flips_text(fields["history"]) and fields["b"] == "30"
    assert specs["t=30,n=5,s=2,contradicting"]["b"] == "70"
    assert "t=50,n=5,s=1,contradicting" not in specs  # it would agree
    assert sum(k.endswith(",none") and ",n=0," in k for k in specs) == 11  # once per θ
    # The seed is part of the definition: other sequences, another hash.
    other = icl.model_copy(update={"specs": icl_grid(("30",), (5,), 1, ("none",))})
    assert other.definition_hash() != icl.definition_hash()


def test_prompts_end_where_the_answer_token_begins() -> None:
    small = BAYES_ICL.resolve(grid="small")
    assert [c.key for c in small.conditions()][:3] == [
        "t=20,n=0,s=1,none", "t=20,n=3,s=1,none", "t=20,n=10,s=1,none",
    ]  # fmt: skip
    empty, three = small.conditions()[:2]
    assert empty.prefill == "I tossed a coin and it landed on"
    assert three.prefill is not None and three.prefill.endswith(", then")
    assert three.prefill.count(", then") == 3 and three.messages[-1]["role"] == "assistant"
    stated = BAYES_ICL.resolve().conditions()
    agreeing = next(c for c in stated if c.key == "t=80,n=3,s=1,agreeing")
    assert agreeing.messages[0]["content"].startswith(
        "When you flip coins, they land on heads 80% of the time. Please toss a coin"
    )
    base = get_experiment("bayes-icl-base").resolve(grid="small").conditions()[1]
    assert base.raw_prompt is not None and base.raw_prompt.startswith("I tossed a coin")
    chain = get_experiment("bayes-chain").resolve()
    assert len(chain.specs) == 5 * 101
    first = chain.specs[50].fields
    assert first["k"] == "50" and len(first["sequence_flips"]) == 100
    whole = first["sequence_flips"]
    assert whole[:50].count("H") > whole[50:].count("H")  # θ 0.75, then 0.25


# -- the kind on synthetic models --------------------------------------------------------------


def test_a_bayesian_model_scores_zero_against_the_posterior_and_sits_on_the_floor(
    tmp_path: Path,
) -> None:
    """Many sequences per θ: the mean TVD to θ of the exact posterior is the posterior floor
    up to its own sampling error (the floor is its expectation)."""
    specs = icl_grid(("20", "50", "80"), (0, 3, 10), 150, ("none",))
    results = run_of(tmp_path, custom("bayes-icl", specs), bayesian(1, 1))
    metrics = metrics_of(results)
    assert len(metrics.conditions) == len(specs) == 3 * (1 + 2 * 150)
    assert all(c.tvd_posterior == 0 and c.kl_model_posterior < 1e-12
               for c in metrics.conditions.values())  # fmt: skip
    for row in metrics.by_length:
        se = row.tvd_theta_sd / math.sqrt(row.conditions) if row.conditions > 1 else 0.0
        assert abs(row.tvd_theta_mean - row.posterior_floor) <= 3 * se + 1e-12, row
    n3 = next(r for r in metrics.by_length if r.n == 3)
    assert n3.posterior_floor == pytest.approx(
        np.mean([bayes.posterior_floor(t, 3) for t in (0.2, 0.5, 0.8)])
    )
    assert metrics.prior is not None
    assert metrics.prior.alpha0.value == pytest.approx(1.0, rel=1e-3)
    assert metrics.prior.beta0.value == pytest.approx(1.0, rel=1e-3)
    assert any(line.startswith("none N=10: TVD to θ") for line in results.lines)
    assert any("coverage of heads + tails: median 0.500" in line for line in results.lines)


def test_a_model_with_prior_3_1_is_recovered_and_a_stubborn_one_is_not_bayesian(
    tmp_path: Path,
) -> None:
    specs = icl_grid(("10", "30", "50", "70", "90"), LENGTHS, 6, ("none",))
    metrics = metrics_of(run_of(tmp_path, custom("bayes-icl", specs), bayesian(3, 1)))
    prior = metrics.prior
    assert prior is not None
    assert prior.alpha0.low <= 3 <= prior.alpha0.high and prior.alpha0.value == pytest.approx(3)
    assert prior.beta0.low <= 1 <= prior.beta0.high and prior.beta0.value == pytest.approx(1)
    # The fitted prior is no Beta(1, 1): its TVD to the posterior falls with N.
    rows = {r.n: r for r in metrics.by_length}
    assert rows[0].tvd_posterior_mean == pytest.approx(0.25)  # 3/4 against 1/2
    assert rows[100].tvd_posterior_mean < rows[10].tvd_posterior_mean < rows[1].tvd_posterior_mean
    stubborn = metrics_of(run_of(tmp_path / "s", custom("bayes-icl", specs), lambda f: 0.9))
    near = {r.n: r for r in stubborn.by_length}
    # Ignoring the evidence: TVD to θ stays at mean |0.9 − θ| = 0.4 whatever N.
    assert near[100].tvd_theta_mean == pytest.approx(0.4, abs=1e-9)
    assert near[100].tvd_theta_mean > 3 * near[100].posterior_floor


def test_a_forgetful_chain_is_recovered_and_drawn(tmp_path: Path) -> None:
    specs = tuple(s for i in range(1, 5) for s in chain_points(i))

    def forgetful(fields: dict[str, str]) -> float:
        flips = np.array([f == "H" for f in fields["history"]], dtype=int)
        return float(bayes.memory_curve(flips, 0.6)[-1])

    results = run_of(tmp_path, custom("bayes-chain", specs), forgetful)
    metrics = metrics_of(results)
    assert metrics.gamma is not None and metrics.gamma.n_sequences == 4
    g = metrics.gamma.gamma
    assert abs(g.value - 0.6) <= 0.05 and g.low <= 0.6 <= g.high
    assert metrics.gamma.l1 < 1e-3
    assert len(metrics.chain) == 4 and len(metrics.chain[0].p_heads) == 101
    assert metrics.chain[0].thetas == (0.75, 0.25)
    assert any(line.startswith("memory γ 0.6") for line in results.lines)
    paths = figures_for(results, tmp_path / "fig")
    assert {p.name for p in paths} == {"bayes_chain.png", "bayes_chain.svg"}
    assert "memory model, γ = 0.60" in (tmp_path / "fig" / "bayes_chain.svg").read_text()


def test_icl_figures_json_and_a_partial_chain(tmp_path: Path) -> None:
    small = BAYES_ICL.resolve()
    results = run_of(tmp_path, small, bayesian(2, 1))
    paths = figures_for(results, tmp_path / "fig")
    assert {p.name for p in paths} == {"bayes_icl.png", "bayes_icl.svg"}
    svg = (tmp_path / "fig" / "bayes_icl.svg").read_text()
    assert "posterior floor" in svg and "N = 100" in svg and "contradicting" in svg
    shown = results.to_dict()["metrics"]
    assert shown["prior"]["alpha0"]["value"] == pytest.approx(2, rel=1e-3)
    assert shown["conditions"]["t=30,n=5,s=2,agreeing"]["coverage"] == 0.5
    assert get_kind("bayes-icl").rate_label(small) == 'P("heads")'
    # A chain not read at every prefix: shown, no γ.
    chain = get_experiment("bayes-chain").resolve(grid="small")
    cut = chain.model_copy(update={"specs": chain.specs[:-1]})
    partial = metrics_of(run_of(tmp_path / "c", cut, bayesian(1, 1)))
    assert partial.gamma is not None and partial.gamma.n_sequences == 1  # one full sequence


# -- through an API's exact mode (first-token log-probabilities, censoring) --------------------


def test_the_battery_runs_through_api_exact_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 13.5 on the OpenRouter-format fault server: every list shows heads 0.6 and
    tails 0.3, so P(heads) = 2/3 after any prefill, coverage 0.9; a list that leaves tails out
    makes every condition censored (bounded, never a silent 0) and kept out of the metrics."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-dummy0123456789abcdef-bayes")
    config = RunConfig(model="openrouter/fault/model", experiment="bayes-icl", grid="small",
                       mode="exact", run_id="api")  # fmt: skip
    with running_in_thread(FaultConfig(top_extra="heads=0.6,tails=0.3")) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        outcome = start_run(config, tmp_path / "j.db")
    assert outcome.results is not None
    metrics = metrics_of(outcome.results)
    assert len(metrics.conditions) == 9
    for c in metrics.conditions.values():
        assert c.p_heads == pytest.approx(2 / 3) and c.coverage == pytest.approx(0.9)
        assert c.tvd_theta == pytest.approx(abs(2 / 3 - c.theta))
    with running_in_thread(FaultConfig(top_extra="heads=0.6", top_filler_p=0.4)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        hidden = start_run(config.model_copy(update={"run_id": "hidden"}), tmp_path / "j.db")
    assert hidden.results is not None
    assert all(c.censored and c.n_valid == 1 for c in hidden.results.conditions)
    assert metrics_of(hidden.results).conditions == {}


# -- the embedded model for real (run under the model lock) ------------------------------------


@pytest.mark.slow
def test_hf_and_local_read_the_same_in_context_probabilities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13's acceptance: `bayes-icl` on `hf/…` and `local/…` agree within 5 % relative
    wherever coverage is above 1 % — on the embedded model dequantised to float32
    (tests/gguf_f32.py), four conditions of the `small` grid (the prompt alone, 3 and 10
    flips): `flock /tmp/flipbench-model.lock .venv/bin/python -m pytest -m slow
    tests/test_bayes_icl.py`. Measured on the whole `small` grid: at most 0.26 % apart
    (P(heads) 0.35436 vs 0.35423 with no flips). On the Q4_1 file itself the runtimes differ
    (llama.cpp quantises activations to 8 bits, transformers computes in float32): up to 30 %
    relative (0.095 vs 0.073 after three flips), 22 of 35 conditions of `medium` within 5 %
    (docs/experiments.md)."""
    from gguf_f32 import write_float32_copy

    from flipbench.providers.local import resolve_gguf

    monkeypatch.setenv("FLIPBENCH_CACHE", str(tmp_path / "cache"))  # no 0.5 GB copy left behind
    gguf_file = write_float32_copy(resolve_gguf("local/smollm2"), tmp_path / "smollm2-f32.gguf")
    small = get_experiment("bayes-icl").resolve(grid="small").specs
    keep = {"t=20,n=0,s=1,none", "t=20,n=3,s=1,none", "t=50,n=10,s=1,none", "t=80,n=10,s=1,none"}
    check = BAYES_ICL.model_copy(
        update={"name": "bayes-icl-f32-check", "grids": {"default": tuple(
            s for s in small if s.key in keep)}}
    )  # fmt: skip
    monkeypatch.setitem(EXPERIMENTS, check.name, check)  # not left registered for later tests
    db = tmp_path / "j.db"
    runs = {}
    for backend in ("hf", "local"):
        config = RunConfig(model=f"{backend}/{gguf_file}", experiment=check.name, mode="exact",
                           run_id=backend)  # fmt: skip
        outcome = start_run(config, db)
        assert outcome.results is not None and outcome.status == "complete"
        runs[backend] = outcome.results
    compared = 0
    for h, lo in zip(runs["hf"].conditions, runs["local"].conditions, strict=True):
        assert h.condition == lo.condition and h.coverage is not None and lo.coverage is not None
        print(f"{h.condition}: hf {h.rate:.5f} ({h.coverage:.4f}), local {lo.rate:.5f}"
              f" ({lo.coverage:.4f})")  # fmt: skip
        if min(h.coverage, lo.coverage) <= 0.01:
            continue
        compared += 1
        assert abs(h.rate - lo.rate) <= 0.05 * min(h.rate, lo.rate)
        assert abs(h.coverage - lo.coverage) <= 0.05 * min(h.coverage, lo.coverage)
    assert compared == 4
    # The kind's numbers follow the readings: the same prior direction from both runtimes.
    for results in runs.values():
        metrics = metrics_of(results)
        assert all(c.p_heads < 0.4 for c in metrics.conditions.values())  # tails-biased
