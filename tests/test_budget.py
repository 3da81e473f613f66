"""The budget belongs to the run: it holds across `kill -9` and resumes, and every paid reply is
journaled or counted."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import FLIPBENCH, RUN_TIMEOUT, assert_ok, assert_one_line_error, flipbench

from flipbench.store import Journal
from flipbench.testing.fault_server import FaultConfig, running_in_thread

COST = 0.001
CAP = 0.2  # well above what the killed processes can spend, so the last resume reaches it
CONCURRENCY = 8


def _journaled(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLIPBENCH_DB"}
    return subprocess.Popen(
        [str(FLIPBENCH), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _kill_after_progress(proc: subprocess.Popen[str], db: Path, rng: random.Random) -> None:
    """SIGKILL at a random moment once the run has journaled a few more replies."""
    before = _journaled(db)
    deadline = time.monotonic() + 60
    while _journaled(db) < before + rng.randint(1, 6) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_cap_holds_across_kill_9_cycles_and_nothing_paid_is_unaccounted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-budget-test-0123456789")
    db = tmp_path / "j.db"
    rng = random.Random(9)
    common = ["--db", str(db), "--no-progress"]
    with running_in_thread(FaultConfig(latency_s=0.03, cost_per_call=COST)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        first = _start(
            ["run", "single-flip", "--model", "openrouter/fault/model", "--n", "20",
             "--max-cost", str(CAP), "--max-concurrency", str(CONCURRENCY), "--run-id", "b",
             *common],
            tmp_path,
        )  # fmt: skip
        _kill_after_progress(first, db, rng)
        for _ in range(4):
            _kill_after_progress(_start(["run", "--resume", "b", *common], tmp_path), db, rng)
        last = flipbench("run", "--resume", "b", *common, cwd=tmp_path, timeout=RUN_TIMEOUT)
        again = flipbench("run", "--resume", "b", *common, cwd=tmp_path)
        requests = server.counts["requests"]
        billed = server.billed_usd
    if last.returncode == 0:
        assert "budget reached" in last.stdout + last.stderr
    else:  # the cap was already reached by a killed process: the resume says so and sends nothing
        assert "larger --max-cost" in assert_one_line_error(last)
    # A resume at the cap already spent refuses with one line; nothing is sent.
    assert "larger --max-cost" in assert_one_line_error(again)
    with Journal(db, create=False) as journal:
        spent = journal.spent("b")
        lost, lost_cost = journal.lost_calls("b")
        rows = list(journal.samples("b"))
        run = journal.get_run("b")
    journaled = sum(r["cost"] or 0.0 for r in rows)
    assert run.status == "stopped"
    # What the server billed: at most the cap plus one concurrency window of calls.
    assert billed <= CAP + CONCURRENCY * COST + 1e-9, (billed, requests)
    # Nothing paid is unaccounted: journaled replies plus calls lost in flight at a kill
    # cover the bill, and what was journaled was billed.
    assert journaled <= billed + 1e-9
    assert spent == pytest.approx(journaled + lost_cost)
    assert spent >= billed - 1e-9, (spent, billed, lost)
    assert len(rows) + lost >= requests
    shown = flipbench("show", "b", "--format", "json", "--db", str(db), cwd=tmp_path)
    assert_ok(shown)
    reported = json.loads(shown.stdout)
    assert reported["lost_in_flight"] == {"calls": lost, "counted_usd": lost_cost}
    assert reported["cost_usd"] == pytest.approx(journaled)


def test_in_flight_replies_at_the_cap_are_journaled_not_cancelled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-budget-test-0123456789")
    db = tmp_path / "j.db"
    with running_in_thread(FaultConfig(latency_s=0.05, cost_per_call=COST)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        proc = flipbench(
            "run", "single-flip", "--model", "openrouter/fault/model", "--n", "20",
            "--max-cost", "0.01", "--max-concurrency", "16", "--run-id", "c",
            "--db", str(db), "--no-progress", cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        billed, undelivered = server.billed_usd, server.undelivered_usd
        resumed = flipbench(
            "run", "--resume", "c", "--max-cost", "0.02", "--db", str(db), "--no-progress",
            cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        billed_after = server.billed_usd
    assert_ok(proc)
    assert undelivered == 0  # no reply was abandoned in flight
    with Journal(db, create=False) as journal:
        assert journal.spent("c") == pytest.approx(billed_after)
        assert journal.lost_calls("c") == (0, 0.0)
        assert journal.get_run("c").config["max_cost"] == 0.02
    # Near the cap only what is left of the budget goes on the wire (each call estimated at the
    # largest cost seen), so the overshoot is far below the 16-call window: at most the 4 calls
    # of slow start sent before any cost was known.
    assert 0.01 <= billed <= 0.01 + 4 * COST + 1e-9
    # A resume with a higher cap continues the same budget, not a fresh one.
    assert_ok(resumed)
    assert 0.02 <= billed_after <= 0.02 + 4 * COST + 1e-9
