"""A hostile server: every reply shape is a journaled sample, `show` and `export` survive what
was stored, and no key of any shape reaches the journal, the terminal or a file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import RUN_TIMEOUT, assert_ok, flipbench

from flipbench.testing.fault_server import HOSTILE_SHAPES, FaultConfig, running_in_thread

RUN = ("run", "single-flip", "--model", "openrouter/fault/model", "--no-progress")


def _rows(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM samples ORDER BY id").fetchall()


def _attempts(rows: list[sqlite3.Row]) -> int:
    """Requests a journal accounts for: each row, plus the failed attempts kept with it."""
    total = 0
    for row in rows:
        meta = json.loads(row["meta_json"]) if row["meta_json"] else {}
        total += 1 + len(meta.get("attempts") or []) - (1 if row["status"] == "error" else 0)
        if row["request_json"] and meta.get("turn") == 2:
            total += 1  # the chained first turn
    return total


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultConfig]:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-hostile-test-key-0123456789")
    yield FaultConfig(hostile="all", huge_bytes=300_000, seed=1)


def _run_against(
    config: FaultConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_id: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    """One run, one request at a time, against the server; what it printed and what was served."""
    with running_in_thread(config) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        proc = flipbench(
            *RUN, *args, "--max-retries", "1", "--max-concurrency", "1", "--run-id", run_id,
            "--db", str(tmp_path / "j.db"), cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        return proc, server.counts


def test_every_hostile_shape_is_a_sample_and_show_survives(
    hostile: FaultConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    proc, counts = _run_against(hostile, monkeypatch, tmp_path, "hostile", "--grid", "zoom",
                                "--n", "6", "--timeout", "10")  # fmt: skip
    assert_ok(proc)
    rows = _rows(db)
    # Every request the server answered is in the journal: as a row or an attempt kept with one.
    assert _attempts(rows) == counts["requests"]
    assert counts["requests"] >= len(HOSTILE_SHAPES)  # every shape was served at least once
    categories = {r["invalid_category"] for r in rows if not r["valid"]}
    assert {"malformed", "error"} <= categories, categories
    assert any(r["valid"] for r in rows)
    with sqlite3.connect(db) as conn:
        status = conn.execute("SELECT status FROM runs").fetchone()[0]
    assert status in ("complete", "incomplete")
    total = sum(len(r["response_json"] or "") + len(r["content"] or "") for r in rows)
    assert total < 2_000_000  # the 300 kB replies are cut, and stored once
    for fmt in ("table", "csv", "json"):
        shown = flipbench("show", "hostile", "--format", fmt, "--db", str(db), cwd=tmp_path)
        assert_ok(shown)
        assert "\x1b" not in shown.stdout + shown.stderr
    exported = flipbench("export", "hostile", "--db", str(db), cwd=tmp_path)
    assert_ok(exported)
    frame = pd.read_csv(tmp_path / "flipbench-runs" / "hostile" / "samples.csv", dtype=str)
    for column in frame.columns:
        cells = frame[column].dropna()
        assert not cells.str.match(r"^[=+@\t\r]").any(), column
        assert not cells.str.contains("\x1b").any(), column


def test_unusable_costs_are_flagged_and_counted_conservatively(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-cost-test-key-0123456789")
    shapes = "cost_string,cost_inf,cost_nan,cost_negative"
    with running_in_thread(FaultConfig(hostile=shapes, cost_per_call=0.001)) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        proc = flipbench(
            *RUN, "--p", "50", "--n", "8", "--max-concurrency", "1", "--run-id", "costs",
            "--db", str(db := tmp_path / "j.db"), cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
    assert_ok(proc)
    rows = _rows(db)
    flags = [json.loads(r["meta_json"]).get("cost_flag") for r in rows]
    costs = [r["cost"] for r in rows]
    assert flags == [None, "non_finite", "non_finite", "negative"] * 2
    # inf and NaN count as the largest cost seen so far, a negative one as nothing.
    assert costs == [0.001, 0.001, 0.001, 0.0] * 2
    assert "$-" not in proc.stdout
    shown = flipbench("show", "costs", "--db", str(db), cwd=tmp_path)
    assert_ok(shown)
    assert "$-" not in shown.stdout


def test_exact_mode_survives_every_hostile_shape(
    hostile: FaultConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    proc, counts = _run_against(hostile, monkeypatch, tmp_path, "exact", "--mode", "exact")
    assert_ok(proc)
    rows = _rows(db)
    assert _attempts(rows) == counts["requests"]
    assert all(r["valid"] or r["invalid_category"] for r in rows)  # never invalid unexplained
    assert any(r["valid"] for r in rows)
    shown = flipbench("show", "exact", "--format", "json", "--db", str(db), cwd=tmp_path)
    assert_ok(shown)
