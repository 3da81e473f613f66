"""The embedded model for real: exact distributions after an assistant prefill and a raw prompt.

Run under the shared model lock (one llama.cpp process at a time on these machines):
`flock /tmp/flipbench-model.lock .venv/bin/python -m pytest tests/test_local_protocols.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from flipbench.progress import SilentReporter
from flipbench.providers.local import LocalBackend
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition
from flipbench.tasks.protocols import AssistantPrefill, RawText

pytestmark = pytest.mark.slow

FAIR = ConditionSpec(key="fair", value="50", x=0.5, fields={})


def _coin(protocol: Any, prompt: str) -> ExperimentDefinition:
    return ExperimentDefinition(
        name="coin-prior", title="A fair coin, continued", version="1", prompt=prompt,
        protocol=protocol, grids={"default": (FAIR,)}, answers=("heads", "tails"),
        first="heads", n=3, max_tokens=3,
    )  # fmt: skip


RUNS = {
    "prefill": _coin(
        AssistantPrefill(prefill="The coin landed on"),
        "Flip a fair coin. Did it land on heads or tails?",
    ),
    "raw": _coin(RawText(), "I flipped a fair coin and wrote down the result. The coin landed on"),
}


def test_prefill_and_raw_exact_distributions_on_the_embedded_model(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")

    async def run(backend: LocalBackend, run_id: str, mode: str, constrained: bool) -> None:
        experiment = RUNS[run_id.split("-")[0]].resolve()
        journal.create_run(
            run_id=run_id, experiment=experiment.name, model=backend.model, mode=mode,
            config={}, definition=experiment.model_dump(mode="json"),
            definition_hash=experiment.definition_hash(), versions=backend.versions(),
        )  # fmt: skip
        settings = RunSettings(mode, 1, constrained, 3.0, 2026)
        await Runner(journal, run_id, experiment, backend, settings, SilentReporter()).run()

    async def main() -> None:
        backend = LocalBackend("local/smollm2")
        await backend.start(concurrency=1, exact=True)
        try:
            for name in RUNS:
                await run(backend, f"{name}-exact", "exact", False)
                await run(backend, f"{name}-sampled", "sample", True)
        finally:
            await backend.close()

    asyncio.run(main())
    for name in RUNS:
        (row,) = journal.samples(f"{name}-exact")
        assert row["valid"], row["invalid_category"]
        probs = json.loads(row["probs_json"])
        raw = json.loads(row["meta_json"])["raw_probs"]
        assert set(probs) == {"heads", "tails"}
        assert all(math.isfinite(p) and 0 <= p <= 1 for p in [*probs.values(), *raw.values()])
        assert sum(probs.values()) == pytest.approx(1.0)
        assert 0 < row["coverage"] <= 1 and row["coverage"] == pytest.approx(sum(raw.values()))
        request = json.loads(row["request_json"])
        if name == "raw":
            assert request["prompt"].endswith("landed on") and "messages" not in request
        else:
            assert request["messages"][-1] == {"role": "assistant", "content": "The coin landed on"}
        # constrained sampling continues the text: " heads" / " tails" (the grammar's " "?)
        sampled = list(journal.samples(f"{name}-sampled"))
        assert len(sampled) == 3 and all(r["answer"] in ("heads", "tails") for r in sampled)
