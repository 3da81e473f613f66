"""`fair-coin-labels`: the sweep's prompt with random nonsense labels in both orders (the two
weaknesses seed 003 names). Scripted models that prefer the listed-first label with a known
probability are ranked by that position bias, and each run's word-pair analysis reports it.
Also here, on the same small worlds: `--intervention structured` only where the catalogue lists
structured outputs, and two sweeps compared (`flipbench compare SWEEP_A SWEEP_B`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flipbench import api as run_api
from flipbench.metric_models import WordMetrics
from flipbench.sweep import api
from flipbench.sweep.runner import SweepOptions
from flipbench.tasks import get_experiment
from flipbench.tasks.fair_coin import LABEL_PAIRS
from flipbench.testing.fault_server import FaultConfig, ModelScript, running_in_thread

PLANTED = {"lab0/fair": 0.5, "lab1/first": 0.9, "lab2/second": 0.2, "lab3/always": 1.0}


def _entry(model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
        "architecture": {"output_modalities": ["text"]},
    }


def test_the_labels_are_random_words_in_both_orders_and_never_0_or_1() -> None:
    conditions = get_experiment("fair-coin-labels").resolve().conditions()
    assert len(conditions) == 2 * len(LABEL_PAIRS) == 12
    words = [w for pair in LABEL_PAIRS for w in pair]
    assert len(set(words)) == len(words) and not {"0", "1"} & set(words)
    for c in conditions:
        text = c.messages[-1]["content"]
        assert "{0, 1}" not in text and " 0 and 1 " not in text
        assert f'"Output: {c.answers[0]}" or "Output: {c.answers[1]}"' in text
        assert c.first == c.answers[0] and c.target == {c.answers[0]: 0.5, c.answers[1]: 0.5}
    orders = {(c.group, c.answers) for c in conditions}
    assert all((g, (b, a)) in orders for g, (a, b) in orders)  # each pair in both orders


def test_a_sweep_with_random_labels_ranks_the_planted_position_bias(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "j.db"
    scripts = {m: ModelScript(p_one=p) for m, p in PLANTED.items()}
    served = running_in_thread(FaultConfig(), models=[_entry(m) for m in PLANTED], scripts=scripts)
    with served as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-labels-test")
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        selection, entries = api.choose_models()
        options = SweepOptions(experiment="fair-coin-labels", n=20)
        outcome = api.start_sweep(options, selection, entries, db)
    assert outcome.status == "complete"
    ranking = api.sweep_ranking(outcome.sweep_id or "", db)
    ranked = [r.model for r in ranking.ranked]  # planted biases 0, 0.3, 0.4, 0.5
    assert ranked == ["lab0/fair", "lab2/second", "lab1/first", "lab3/always"]
    for r in ranking.ranked:
        assert r.valid == 240 and r.valid_share == 1.0
        p = PLANTED[r.model]  # within 4 binomial sd (not the 95 % interval: 4 models at once)
        assert abs(r.mean - p) <= 4 * (p * (1 - p) / r.valid) ** 0.5 + 1e-12, r
    always = next(r for r in ranking.ranked if r.model == "lab3/always")
    results = run_api.run_results(always.run_id, db)
    assert isinstance(results.metrics, WordMetrics)
    pos = results.metrics.bias["avg_pos_bias"]
    assert pos.value == pytest.approx(0.5)  # always the listed-first label: |1 − 0.5|
    assert results.metrics.bias["avg_red_bias"].value == pytest.approx(0.0, abs=1e-9)


def test_structured_output_only_where_the_catalogue_lists_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--intervention structured`: models whose entry lists `structured_outputs` are swept
    with a JSON-schema enum (and read from the JSON object); the others are left out with the
    reason, before any call."""
    db = tmp_path / "j.db"
    listed = {"lab0/schema-a": 0.8, "lab1/schema-b": 0.3}
    entries = [{**_entry(m), "supported_parameters": ["structured_outputs"]} for m in listed]
    entries.append(_entry("lab2/plain"))
    scripts = {m: ModelScript(p_one=p, structured=True) for m, p in listed.items()}
    with running_in_thread(
        FaultConfig(record_bodies=True), models=entries, scripts=scripts
    ) as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-structured-test")
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        selection, chosen = api.choose_models(intervention="structured")
        assert [m.id for m in selection.models] == list(listed)
        assert "structured_outputs" in selection.left_out["lab2/plain"]
        options = SweepOptions(experiment="fair-coin", intervention="structured", n=40)
        outcome = api.start_sweep(options, selection, chosen, db)
        bodies = server.bodies
    assert outcome.status == "complete"
    assert all(b["model"] != "lab2/plain" for b in bodies if "model" in b)
    schema = bodies[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["enum"] == ["0", "1"]
    ranking = api.sweep_ranking(outcome.sweep_id or "", db)
    for r in ranking.ranked:
        p = listed[r.model]
        assert r.valid == 40 and abs(r.mean - p) <= 4 * (p * (1 - p) / 40) ** 0.5, r


def test_two_sweeps_compared_show_what_moved(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flipbench compare SWEEP_A SWEEP_B`: the same models asked twice, one of them changed."""
    from cli_helpers import flipbench

    db = tmp_path / "j.db"
    ids = []
    for fair_p in (0.5, 0.95):  # the second time `lab0/fair` leans hard on the first label
        planted = {**PLANTED, "lab0/fair": fair_p}
        scripts = {m: ModelScript(p_one=p) for m, p in planted.items()}
        served = running_in_thread(FaultConfig(), models=[_entry(m) for m in planted],
                                   scripts=scripts)  # fmt: skip
        with served as server:
            monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-compare-test")
            monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
            selection, entries = api.choose_models()
            options = SweepOptions(experiment="fair-coin-labels", n=10)
            ids.append(api.start_sweep(options, selection, entries, db).sweep_id or "")
    proc = flipbench("compare", *ids, "--db", str(db), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    changes = {c["model"]: c for c in data["shared"]}
    assert set(changes) == set(PLANTED) and data["only_a"] == data["only_b"] == []
    fair = changes["lab0/fair"]
    assert fair["beyond_noise"] and fair["change_low"] > 0.2
    always = changes["lab3/always"]  # 1.0 both times: no change, and the interval says so
    assert always["change"] == 0.0 and always["change_low"] < 0 < always["change_high"]
    table = flipbench("compare", *ids, "--db", str(db), cwd=tmp_path)
    assert "4 models in both sweeps" in table.stdout and "moved" in table.stdout
    mixed = flipbench("compare", ids[0], "run-nope", "--db", str(db), cwd=tmp_path)
    assert mixed.returncode == 2 and "not a mix" in mixed.stderr
