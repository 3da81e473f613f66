"""The asynchronous API: several runs side by side on one event loop, one journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flipbench.api import resume_run_async, run_results, start_run_async
from flipbench.config import RunConfig
from flipbench.store import Journal
from flipbench.testing.fault_server import FaultConfig, running_in_thread


def test_runs_go_side_by_side_on_one_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-async-test-0123456789")
    db = tmp_path / "j.db"
    with running_in_thread(FaultConfig(latency_s=0.05, cost_per_call=0.001)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)

        async def both() -> list[str]:
            runs = [
                start_run_async(
                    RunConfig(
                        model="openrouter/fault/model",
                        grid="zoom",
                        n=20,
                        run_id=name,
                        max_cost=0.04 if name == "capped" else None,
                    ),
                    db,
                )
                for name in ("free", "capped")
            ]
            outcomes = await asyncio.gather(*runs)
            resumed = await resume_run_async("capped", db, max_cost=1.0)
            return [o.status for o in outcomes] + [resumed.status]

        statuses = asyncio.run(both())
    assert statuses == ["complete", "stopped", "complete"]
    assert [c.n_valid for c in run_results("free", db).conditions] == [20] * 5
    assert [c.n_valid for c in run_results("capped", db).conditions] == [20] * 5
    with Journal(db, create=False) as journal:
        assert journal.spent("capped") == pytest.approx(0.1)  # each of its 100 calls, once
        spans = {run: [r["created_at"] for r in journal.samples(run)] for run in ("free", "capped")}
    # Side by side, not one after the other: each run journaled replies while the other did.
    free, capped = spans["free"], spans["capped"][:40]  # the capped run's first part
    assert min(free) < max(capped) and min(capped) < max(free)
