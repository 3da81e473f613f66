"""`show` of a run that did not complete, its two CSV formats, and `run --resume` refusing what
would change the run (issue 14, point 3). Journals are written directly (no model)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from flipbench.store import Journal
from flipbench.tasks import get_experiment
from tests.cli_helpers import assert_ok, assert_one_line_error, flipbench, snapshot
from tests.synthetic_runs import _flip, make_run

ANSWERED = 6  # of the default grid's 21 conditions


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """`cut`: stopped after 6 of 21 conditions; `whole`: every condition, complete."""
    db = tmp_path / "j.db"
    flip = get_experiment("single-flip").resolve(n=10)
    keys = [c.key for c in flip.conditions()]
    with Journal(db) as j:
        make_run(j, "cut", flip, _flip(8.0), skip=frozenset(keys[ANSWERED:]))
        make_run(j, "whole", flip, _flip(8.0), invalid=1)
        j.set_status("whole", "complete")
    return db


def _show(db: Path, run_id: str, fmt: str) -> str:
    proc = flipbench("show", run_id, "--format", fmt, "--db", str(db), cwd=db.parent)
    assert_ok(proc)
    return proc.stdout


def test_a_partial_runs_s_is_labelled_with_its_share_of_the_grid(journal: Path) -> None:
    table = _show(journal, "cut", "table")
    s_line = next(line for line in table.splitlines() if line.startswith("S = "))
    assert "(partial: 29% of the grid)" in s_line, s_line
    assert "partial: the run is stopped; 6 of 21 conditions answered (29% of the grid)" in table
    data = json.loads(_show(journal, "cut", "json"))
    assert data["S_partial"] is True and data["status"] == "stopped"
    coverage = data["grid_coverage"]
    assert (coverage["conditions_answered"], coverage["conditions_total"]) == (ANSWERED, 21)
    assert coverage["grid_share"] == pytest.approx(ANSWERED / 21)
    assert coverage["valid_samples"] == ANSWERED * 10 and coverage["target_samples"] == 210
    assert f"S = {data['S']['value']:.3f} (partial" in s_line


def test_a_complete_runs_s_is_not_labelled(journal: Path) -> None:
    table = _show(journal, "whole", "table")
    assert "partial" not in table
    data = json.loads(_show(journal, "whole", "json"))
    assert data["S_partial"] is False and data["grid_coverage"]["grid_share"] == 1.0


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_holds_conditions_only_and_summary_csv_the_rest(journal: Path) -> None:
    data: dict[str, Any] = json.loads(_show(journal, "whole", "json"))
    rows = _csv(_show(journal, "whole", "csv"))
    assert [r["condition"] for r in rows] == [c["condition"] for c in data["conditions"]]
    assert all(r["p"] != "" for r in rows)  # no S row among the conditions
    summary = {r["name"]: r for r in _csv(_show(journal, "whole", "summary-csv"))}
    assert {r["run_id"] for r in summary.values()} == {"whole"}
    s = summary["S"]
    assert float(s["value"]) == pytest.approx(data["S"]["value"], rel=1e-12)
    assert float(s["ci_low"]) == pytest.approx(data["S"]["low"], rel=1e-12)
    assert float(s["ci_high"]) == pytest.approx(data["S"]["high"], rel=1e-12)
    floor = float(summary["S_noise_floor"]["value"])
    assert floor == pytest.approx(data["S_noise_floor"], rel=1e-12)
    assert summary["S_partial"]["value"] == "False" and summary["status"]["value"] == "complete"
    assert float(summary["grid_coverage.grid_share"]["value"]) == 1.0
    assert float(summary["metrics.S"]["value"]) == pytest.approx(data["S"]["value"], rel=1e-12)
    cut = {r["name"]: r["value"] for r in _csv(_show(journal, "cut", "summary-csv"))}
    assert cut["S_partial"] == "True"
    assert int(cut["grid_coverage.conditions_answered"]) == ANSWERED


def test_show_refuses_an_unknown_format_naming_the_known_ones(journal: Path) -> None:
    line = assert_one_line_error(
        flipbench("show", "cut", "--format", "xlsx", "--db", "j.db", cwd=journal.parent)
    )
    assert "summary-csv" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--n", "20"), "--n"),
        (("--grid", "zoom", "--temperature", "2"), "--grid, --temperature"),
        (("--mode", "exact", "-M", "x=1"), "--mode, --model-option"),
        (("--model", "local/smollm2", "--max-attempts-factor", "9"), "--model, --max-attempts"),
        (("--constrained",), "--constrained"),
        (("--timeout", "60"), "--timeout"),  # the default value, given: still not honoured
    ],
)
def test_resume_refuses_options_that_would_change_the_run(
    journal: Path, args: tuple[str, ...], named: str
) -> None:
    before = snapshot(journal.parent)
    proc = flipbench("run", "--resume", "cut", *args, "--db", "j.db", cwd=journal.parent)
    line = assert_one_line_error(proc)
    assert line.startswith("error: --resume continues run cut as it was started; ")
    assert f"{named}" in line and "would change it" in line
    assert snapshot(journal.parent) == before


def test_resume_takes_the_options_that_do_not_change_the_run(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--max-cost and --max-concurrency pass the check: the run then goes on, here to its
    backend's own refusal (its stored model names a server with no URL set), before anything
    is written."""
    with closing(sqlite3.connect(journal)) as raw, raw:
        raw.execute(
            "UPDATE runs SET config_json = ?, status = 'interrupted', pid = NULL"
            " WHERE run_id = 'cut'",
            (json.dumps({"model": "openai-api/nowhere/x"}),),
        )
    monkeypatch.delenv("NOWHERE_BASE_URL", raising=False)
    before = snapshot(journal.parent)
    proc = flipbench("run", "--resume", "cut", "--max-cost", "1", "--max-concurrency", "2",
                     "--no-progress", "--db", "j.db", cwd=journal.parent)  # fmt: skip
    line = assert_one_line_error(proc)
    assert "would change it" not in line and "NOWHERE_BASE_URL" in line
    assert snapshot(journal.parent) == before
