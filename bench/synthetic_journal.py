"""Synthetic journals for the CLI and journal benches: runs written through the store's own API.

Each sample is a `SampleRecord` shaped like what a constrained single-flip run on the embedded
model stores (the same request body, a reply with llama.cpp's usage and timings, the meta
fields), written with `Journal.record` — one transaction per sample, the path the runner takes —
so sizes and write times are what a real run of that size would see. No model is loaded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import Condition, ResolvedExperiment

MODEL = "local/smollm2"
GRAMMAR = 'root ::= " "? answer\nanswer ::= "0" | "1"'
TIMINGS = {
    "cache_n": 74, "prompt_n": 1, "prompt_ms": 3.48, "prompt_per_token_ms": 3.48,
    "prompt_per_second": 287.3, "predicted_n": 2, "predicted_ms": 24.6,
    "predicted_per_token_ms": 12.3, "predicted_per_second": 81.3,
}  # fmt: skip


def _request(condition: Condition) -> dict[str, Any]:
    return {
        "messages": condition.messages,
        "temperature": 1.0,
        "max_tokens": 16,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "grammar": GRAMMAR,
    }


def _reply(answer: str, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A llama.cpp chat completion as the local backend stores it, and the sample's meta."""
    usage = {
        "completion_tokens": 2,
        "prompt_tokens": 75,
        "total_tokens": 77,
        "prompt_tokens_details": {"cached_tokens": 74},
    }
    gen = f"chatcmpl-{index:032x}"
    response = {
        "choices": [
            {
                "finish_reason": "stop",
                "index": 0,
                "message": {"role": "assistant", "content": answer},
            }
        ],
        "created": 1796056202,
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "system_fingerprint": "b0-unknown",
        "object": "chat.completion",
        "usage": usage,
        "id": gen,
        "timings": TIMINGS,
    }
    return response, {"generation_id": gen, "usage": usage}


def record_for(condition: Condition, index: int, rng: random.Random) -> SampleRecord:
    """One sample as the runner journals it (about one in fifty invalid, as a loaded model
    without a grammar gives)."""
    valid = rng.random() > 0.02
    answer = ("1" if rng.random() < 0.3 + 0.4 * condition.x else "0") if valid else None
    response, meta = _reply(answer or "Heads!", index)
    return SampleRecord(
        condition=condition.key, sample_index=index, status="ok", request=_request(condition),
        response=response, valid=valid, http_status=200, content=answer or "Heads!",
        finish_reason="stop", answer=answer,
        invalid_category=None if valid else "unparseable", meta=meta,
        latency_s=0.03 + rng.random() / 100,
    )  # fmt: skip


def create_run(journal: Journal, run_id: str, experiment: ResolvedExperiment) -> None:
    config = {"experiment": experiment.name, "model": MODEL, "constrained": True, "threads": 2}
    journal.create_run(
        run_id=run_id, experiment=experiment.name, model=MODEL, mode="sample", config=config,
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={"flipbench": "bench"},
    )  # fmt: skip


def write_run(
    journal: Journal,
    run_id: str,
    experiment: ResolvedExperiment,
    *,
    seed: int = 0,
    write: Callable[[Journal, str, SampleRecord], None] | None = None,
) -> int:
    """Create the run and journal N samples per condition; returns the samples written.
    `write` replaces `Journal.record` (to time another path); the run ends `complete`."""
    rng = random.Random(seed)
    create_run(journal, run_id, experiment)
    count = 0
    for condition in experiment.conditions():
        for index in range(experiment.n):
            record = record_for(condition, index, rng)
            if write is None:
                journal.record(run_id, record)
            else:
                write(journal, run_id, record)
            count += 1
    journal.set_status(run_id, "complete")
    return count


def single_flip(n: int, grid: str = "default") -> ResolvedExperiment:
    return get_experiment("single-flip").resolve(n=n, grid=grid)


def journal_of_runs(db: Path, runs: int, n: int) -> list[str]:
    """A journal of `runs` complete single-flip runs (21 conditions × n samples each)."""
    ids = []
    with Journal(db) as journal:
        for i in range(runs):
            run_id = f"bench-{i:03d}"
            write_run(journal, run_id, single_flip(n), seed=i)
            ids.append(run_id)
    return ids
