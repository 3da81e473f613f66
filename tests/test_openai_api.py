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

from flipbench.api import export, start_run
from flipbench.config import RunConfig
from flipbench.errors import BackendFatalError, FlipbenchError
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
    assert requests <= 16
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
