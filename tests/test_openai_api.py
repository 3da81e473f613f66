"""API backends over real HTTP on loopback: the llama.cpp server, and our scripted fault server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import RUN_TIMEOUT, assert_ok, assert_one_line_error, flipbench

from flipbench.api import export, start_run
from flipbench.config import RunConfig
from flipbench.errors import BackendFatalError, FlipbenchError
from flipbench.store import Journal
from flipbench.testing.fault_server import FaultConfig, running_in_thread

DUMMY_KEY = "sk-or-v1-dummy0123456789abcdef-never-logged"


@pytest.fixture
def openrouter_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENROUTER_API_KEY", DUMMY_KEY)
    yield


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(FlipbenchError, match="OPENROUTER_API_KEY is not set"):
        start_run(RunConfig(model="openrouter/openai/gpt-5"), tmp_path / "j.db")
    with pytest.raises(FlipbenchError, match="openrouter/<author>/<slug>"):
        start_run(RunConfig(model="openrouter/gpt-5"), tmp_path / "j.db")
    with pytest.raises(FlipbenchError, match="NOWHERE_BASE_URL"):
        start_run(RunConfig(model="openai-api/nowhere/m"), tmp_path / "j.db")
    assert not (tmp_path / "j.db").exists()


def test_faulty_run_ends_with_exactly_n_valid_and_counts_retries(
    openrouter_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    faults = FaultConfig(
        seed=3, rate_limit=0.10, retry_after_s=0.2, error_200=0.05, hang=0.02, hang_s=30,
        malformed=0.01, no_choices=0.01, cache_hit=0.01, empty_length=0.01, record_bodies=True,
    )  # fmt: skip
    with running_in_thread(faults) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        outcome = start_run(
            RunConfig(model="openrouter/fault/model", grid="zoom", n=40, timeout_s=1.0,
                      max_concurrency=32, run_id="faulty"),
            tmp_path / "j.db",
        )  # fmt: skip
        counts, bodies, headers = server.counts, server.bodies, server.headers
    assert outcome.status == "complete" and outcome.results is not None
    assert [c.n_valid for c in outcome.results.conditions] == [40] * 5
    assert outcome.retries.get("rate_limit", 0) > 0 and outcome.retries.get("transient", 0) > 0
    invalid = Counter()
    for c in outcome.results.conditions:
        invalid.update(c.invalid)
    assert set(invalid) <= {"cache_hit", "truncated"} and sum(invalid.values()) > 0
    assert all(b["temperature"] == 1.0 and b["max_tokens"] == 1024 for b in bodies)
    assert all(h.get("X-OpenRouter-Cache") == "false" for h in headers)
    assert counts["requests"] >= 200

    # The key travels only in the Authorization header: nowhere in what flipbench wrote.
    export("faulty", "csv", tmp_path / "x.csv", tmp_path / "j.db")
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert DUMMY_KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("fatal", ["401", "404", "402"])
def test_fatal_errors_stop_the_model_after_a_handful(
    openrouter_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fatal: str
) -> None:
    with running_in_thread(FaultConfig(fatal=fatal)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        with pytest.raises(BackendFatalError) as caught:
            start_run(RunConfig(model="openrouter/fault/model", n=100, max_concurrency=16),
                      tmp_path / "j.db")  # fmt: skip
        requests = server.counts["requests"]
    assert requests <= 4  # slow start: 4 in flight until replies come back
    assert "\n" not in str(caught.value) and DUMMY_KEY not in str(caught.value)


def test_cli_fatal_error_is_one_line_exit_2(tmp_path: Path) -> None:
    with running_in_thread(FaultConfig(fatal="401")) as server:
        env = {
            **os.environ,
            "OPENROUTER_API_KEY": DUMMY_KEY,
            "OPENROUTER_BASE_URL": server.base_url,
        }
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "flipbench"), "run", "single-flip", "--model",
             "openrouter/fault/model", "--db", str(tmp_path / "j.db"), "--no-progress"],
            env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "401" in lines[0] and DUMMY_KEY not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_llamacpp_server_through_openai_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio

    from flipbench.providers.local import LocalBackend

    async def serve() -> tuple[LocalBackend, str]:
        backend = LocalBackend("local/smollm2")
        await backend.start(concurrency=4, exact=False)
        return backend, backend._base_url

    loop = asyncio.new_event_loop()
    backend, url = loop.run_until_complete(serve())
    try:
        monkeypatch.setenv("LLAMACPP_BASE_URL", url + "/v1")
        outcome = start_run(
            RunConfig(model="openai-api/llamacpp/smollm2", p_values=["30", "70"], n=5,
                      max_tokens=8, max_attempts_factor=4, run_id="llama"),
            tmp_path / "j.db",
        )  # fmt: skip
        assert outcome.results is not None
        assert all(c.n_total >= 5 for c in outcome.results.conditions)
        rows = json.loads(json.dumps(outcome.results.to_dict()))
        assert rows["model"] == "openai-api/llamacpp/smollm2"
    finally:
        loop.run_until_complete(backend.close())
        loop.close()


def _cli_env(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", server_url)


def test_acceptance_fault_run_exactly_n_valid_and_retries_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 4's fault mix on 21 p × 100 through the CLI (its wall time: bench/api_throughput)."""
    faults = FaultConfig(
        seed=1, rate_limit=0.10, retry_after_s=1, error_200=0.05, hang=0.02, hang_s=30,
        malformed=0.01,
    )  # fmt: skip
    with running_in_thread(faults) as server:
        _cli_env(server.base_url, monkeypatch)
        proc = flipbench(
            "run", "single-flip", "--model", "openrouter/fault/model", "--n", "100",
            "--timeout", "5", "--run-id", "faults", "--no-progress", "--db", "j.db",
            cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        counts = server.counts
    assert_ok(proc)
    assert counts["rate_limit"] > 100 and counts["hang"] > 20 and counts["malformed"] > 5
    retries = next(line for line in proc.stdout.splitlines() if line.startswith("retries:"))
    assert "rate_limit" in retries and "transient" in retries
    with Journal(tmp_path / "j.db", create=False) as journal:
        rows = list(journal.samples("faults"))
    valid = Counter(r["condition"] for r in rows if r["valid"])
    assert len(valid) == 21 and set(valid.values()) == {100}
    keys = [(r["condition"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_unknown_model_is_refused_before_any_call(
    openrouter_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with running_in_thread(FaultConfig()) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        with pytest.raises(FlipbenchError, match="did you mean fault/model"):
            start_run(RunConfig(model="openrouter/fault/modle"), tmp_path / "j.db")
        assert server.counts.get("requests", 0) == 0


def test_plan_cost_and_env_file_through_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with running_in_thread(FaultConfig(api_key=DUMMY_KEY, cost_per_call=0.0001)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        missing = flipbench("run", "single-flip", "--model", "openrouter/fault/model",
                            "--env-file", "nope.env", "--db", "j.db", cwd=tmp_path)  # fmt: skip
        (tmp_path / "keys.env").write_text(f"OPENROUTER_API_KEY={DUMMY_KEY}\n")
        proc = flipbench(
            "run", "single-flip", "--model", "openrouter/fault/model", "--n", "5",
            "--env-file", "keys.env", "--run-id", "planned", "--no-progress", "--db", "j.db",
            cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        shown = flipbench("show", "planned", "--db", "j.db", cwd=tmp_path)
    assert "nope.env does not exist" in assert_one_line_error(missing)
    assert_ok(proc)
    plan = next(line for line in proc.stderr.splitlines() if line.startswith("plan:"))
    # 105 calls × (42 prompt tokens × $1e-7 + 1 or 1,024 completion tokens × $2e-7)
    #   = 105 × 4.4e-6 = $0.000462  …  105 × 2.09e-4 = $0.021945
    assert "105 calls over 21 conditions" in plan and "at most 525" in plan
    assert "estimated cost $0.000462–$0.02194 (≈42 prompt tokens" in plan
    assert_ok(shown)
    assert "cost: $0.0105 over 105 requests" in shown.stdout
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "keys.env":
            assert DUMMY_KEY.encode() not in path.read_bytes(), path


def test_exact_mode_over_an_api_reads_top_logprobs(
    openrouter_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with running_in_thread(FaultConfig(echo_p=True)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        outcome = start_run(
            RunConfig(model="openrouter/fault/model", mode="exact", grid="zoom"),
            tmp_path / "j.db",
        )
        requests = server.counts["requests"]
    assert outcome.status == "complete" and outcome.results is not None and requests == 5
    rates = [round(c.rate, 6) for c in outcome.results.conditions]
    assert rates == [0.45, 0.49, 0.5, 0.51, 0.55]  # the server echoes the requested p


NO_LOGPROBS_MODEL = [{"id": "fault/model", "supported_parameters": ["temperature", "max_tokens"]}]


@pytest.mark.parametrize("catalogue", ["says-no", "silent"])
def test_exact_without_logprobs_refuses_or_falls_back_when_asked(
    openrouter_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, catalogue: str
) -> None:
    models = NO_LOGPROBS_MODEL if catalogue == "says-no" else []
    config = RunConfig(model="openrouter/fault/model", mode="exact", grid="zoom", n=4)
    with running_in_thread(FaultConfig(logprobs=False), models=models) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        with pytest.raises(FlipbenchError, match="--fallback-to-sample"):
            start_run(config.model_copy(update={"run_id": "strict"}), tmp_path / "j.db")
        refused_after = server.counts.get("requests", 0)
        fallback = config.model_copy(update={"run_id": "fb", "fallback_to_sample": True})
        outcome = start_run(fallback, tmp_path / "j.db")
    # The catalogue answers before any call; without it, the first replies tell (and are kept).
    with Journal(tmp_path / "j.db", create=False) as journal:
        strict = list(journal.samples("strict")) if catalogue == "silent" else []
        assert catalogue == "silent" or "strict" not in {r.run_id for r in journal.list_runs()}
    if catalogue == "says-no":
        assert refused_after == 0
    else:  # the calls in flight at the first reply: slow start keeps them few
        assert 1 <= len(strict) <= refused_after <= 8
        assert {r["invalid_category"] for r in strict} == {"no_logprobs"}
    assert outcome.status == "complete" and outcome.results is not None
    assert outcome.results.run.mode == "sample"
    assert "top_logprobs" in outcome.results.run.versions["exact_fallback"]
    assert [c.n_valid for c in outcome.results.conditions] == [4] * 5
