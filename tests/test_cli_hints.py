"""Where a user is stuck, flipbench says what to do (issue 14, point 3): a dead endpoint fails
in seconds naming the URL it tried and leaves no run behind; a missing key points to
`--env-file`; an empty leaderboard says how to make one."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from flipbench import api
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from flipbench.providers.reach import check_reachable
from flipbench.store import Journal
from tests.cli_helpers import assert_ok, assert_one_line_error, flipbench, snapshot


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_dead_endpoint_fails_in_seconds_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    monkeypatch.setenv("DEAD_BASE_URL", url)
    Journal(tmp_path / "j.db").close()  # a journal that already exists gains no run
    before = snapshot(tmp_path)
    started = time.monotonic()
    proc = flipbench("run", "single-flip", "--model", "openai-api/dead/x", "--n", "5",
                     "--no-progress", "--db", "j.db", cwd=tmp_path)  # fmt: skip
    elapsed = time.monotonic() - started
    line = assert_one_line_error(proc)
    assert url in line and "connection refused" in line and "DEAD_BASE_URL" in line, line
    assert "OpenRouter" not in line
    assert elapsed < 20, elapsed  # was 34 s of retries; most of this is the interpreter
    assert snapshot(tmp_path) == before
    assert api.list_runs(tmp_path / "j.db") == []


def test_a_dead_endpoint_is_refused_by_the_api_before_a_run_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEAD_BASE_URL", f"http://user:pw@127.0.0.1:{closed_port()}/v1")
    config = RunConfig(experiment="single-flip", model="openai-api/dead/x", n=2, run_id="r")
    with pytest.raises(FlipbenchError, match="cannot reach the dead server at http://127") as exc:
        api.start_run(config, tmp_path / "j.db")
    assert "pw" not in str(exc.value)  # the password in the URL is never printed
    assert not (tmp_path / "j.db").exists()


def test_an_unresolvable_host_and_a_silent_one_are_named_too() -> None:
    with pytest.raises(FlipbenchError, match=r"cannot reach S at http://no-such-host\.invalid/v1"):
        asyncio.run(check_reachable("http://no-such-host.invalid/v1", "S", timeout_s=5))
    with pytest.raises(FlipbenchError, match="names no host"):
        asyncio.run(check_reachable("http:///v1", "S"))


def test_a_listening_endpoint_passes(tmp_path: Path) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await check_reachable(f"http://127.0.0.1:{port}/v1", "S")

    asyncio.run(main())


def test_a_missing_key_points_to_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    line = assert_one_line_error(
        flipbench("run", "single-flip", "--model", "openrouter/a/b", cwd=tmp_path)
    )
    assert "OPENROUTER_API_KEY is not set" in line and "--env-file" in line
    monkeypatch.delenv("NOWHERE_BASE_URL", raising=False)
    line = assert_one_line_error(
        flipbench("run", "single-flip", "--model", "openai-api/nowhere/m", cwd=tmp_path)
    )
    assert "NOWHERE_BASE_URL" in line and "--env-file" in line
    assert snapshot(tmp_path) == {}


def test_an_empty_leaderboard_says_how_to_make_one(tmp_path: Path) -> None:
    Journal(tmp_path / "j.db").close()
    table = flipbench("leaderboard", "--db", "j.db", cwd=tmp_path)
    assert_ok(table)
    assert "no benchmark in j.db yet" in table.stdout and "flipbench bench" in table.stdout
    as_csv = flipbench("leaderboard", "--format", "csv", "--db", "j.db", cwd=tmp_path)
    assert_ok(as_csv)
    assert as_csv.stdout.splitlines() == [
        "rank,model,total,95% CI,noise floor,Exp1,Exp2,Exp3,Exp4,Exp5,bench id"
    ]  # the file stays a CSV; the hint goes to stderr
    assert "flipbench bench" in as_csv.stderr
