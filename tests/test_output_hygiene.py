"""Stored values cannot break or hijack what flipbench prints or exports.

Journals are written directly (no model): costs that overflow or go negative, Gaussian runs
before their first finite answer, and text holding rich markup, ANSI/OSC escape sequences,
carriage returns and spreadsheet formulas. `show` (every format), `runs`, `export`, the
leaderboard and the `error:` line must survive all of it, print it literally, and neutralise it.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_helpers import assert_ok, assert_one_line_error, flipbench
from test_benchmark import _calibrated_benchmark

from flipbench import api, cli
from flipbench.cli import battery as cli_battery
from flipbench.results import compute_results
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment

MARKUP = "[/bold] [link=http://evil.example]click[/link] :warning:"
ANSI = "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x07link\x1b]8;;\x07 \x9b2J over\rwrite"
HOSTILE = f"{MARKUP} {ANSI}"
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3+cmd|x",
            "@SUM(1+1)", "\t=1+1", "\r=1+1"]  # fmt: skip
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\r")


def _run(
    journal: Journal, run_id: str, name: str, rows: list[dict[str, object]], *,
    model: str = "synthetic/model", **resolve: object,
) -> None:  # fmt: skip
    experiment = get_experiment(name).resolve(n=2, **resolve)  # type: ignore[arg-type]
    journal.create_run(
        run_id=run_id, experiment=experiment.name, model=model, mode="sample", config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    key = experiment.conditions()[0].key
    for i, row in enumerate(rows):
        fields: dict[str, Any] = {"valid": True, **row}
        record = SampleRecord(
            condition=key, sample_index=i, status="ok", request={}, response={}, **fields
        )
        journal.record(run_id, record)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "j.db"
    with Journal(path) as journal:
        _run(journal, "costs", "single-flip", [
            {"answer": "1", "content": "1", "cost": 0.25},
            {"answer": "1", "content": "1", "cost": 1e308},
            {"answer": "0", "content": "0", "cost": 1e308},
            {"answer": "0", "content": "0", "cost": -4000.0},
            {"answer": "1", "content": "1", "cost": float("inf")},
            {"answer": "1", "content": "1", "cost": "lots"},
            {"answer": "1", "content": "1", "cost": 0.5, "meta": {"cost_flag": "non_finite"}},
        ], grid="t2")  # fmt: skip
        journal.set_status("costs", "complete")
        _run(journal, "negative", "single-flip", [
            {"answer": "1", "content": "1", "cost": -4000.0},
            {"answer": "1", "content": "1", "cost": 0.125},
        ], grid="t2")  # fmt: skip
        _run(journal, "gauss-none", "gaussian", [])
        _run(journal, "gauss-invalid", "gaussian", [
            {"valid": False, "content": "no idea", "invalid_category": "unparseable"},
        ])  # fmt: skip
        _run(journal, "gauss-inf", "gaussian", [
            {"answer": "inf", "content": "inf"}, {"answer": "1e400", "content": "1e400"},
            {"answer": "nan", "content": "nan"},
        ])  # fmt: skip
        _run(journal, "gauss-neg", "gaussian", [
            {"answer": "-5", "content": "-5"}, {"answer": "103", "content": "103"},
        ])  # fmt: skip
        _run(journal, "markup", "single-flip", [
            {"answer": "1", "content": text} for text in [HOSTILE, *FORMULAS]
        ] + [
            {"valid": False, "content": HOSTILE, "invalid_category": f"weird {HOSTILE}",
             "finish_reason": "=1+1"},
        ], model=f"m {HOSTILE}", grid="t2")  # fmt: skip
        journal.set_status("markup", "failed", f"server said: {HOSTILE}")
    return path


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real console script (slow to start: used where the whole path matters)."""
    return flipbench(*args, "--db", str(db), cwd=db.parent)


@pytest.fixture
def show(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """`flipbench show` in this process: its stdout, after checking stderr is empty and that
    no raw control character reached either."""
    monkeypatch.setattr(cli.out, "width", 200)

    def run(db: Path, run_id: str, fmt: str = "table") -> str:
        cli.show(run_id, fmt, db)
        captured = capsys.readouterr()
        assert captured.err == ""
        for char in RAW_CONTROLS:
            assert char not in captured.out, (char, captured.out)
        assert "$-" not in captured.out
        return captured.out

    return run


def _assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert_ok(proc)
    for char in RAW_CONTROLS:
        assert char not in proc.stdout + proc.stderr, (char, proc.stdout)
    assert "$-" not in proc.stdout


RUN_IDS = ["costs", "negative", "gauss-none", "gauss-invalid", "gauss-inf", "gauss-neg", "markup"]


@pytest.mark.parametrize("fmt", ["table", "csv", "summary-csv", "json"])
@pytest.mark.parametrize("run_id", RUN_IDS)
def test_show_survives_every_stored_value_in_every_format(
    db: Path, run_id: str, fmt: str, show: Callable[..., str]
) -> None:
    printed = show(db, run_id, fmt)
    if fmt == "json":
        json.loads(printed)
    if fmt == "csv":  # one row per condition, and nothing else
        rows = list(csv.reader(io.StringIO(printed)))
        assert rows[0][0] == "condition" and "S" not in [r[0] for r in rows]
    if fmt == "summary-csv":
        rows = list(csv.reader(io.StringIO(printed)))
        assert rows[0] == ["run_id", "name", "value", "ci_low", "ci_high"]
        assert "S" in [r[1] for r in rows]


def test_markup_and_escapes_are_printed_literally(db: Path) -> None:
    shown = _cli(db, "show", "markup")
    _assert_clean(shown)
    table = shown.stdout
    assert "[/bold] [link=http://evil.example]click[/link] :warning:" in table
    assert "\\x1b[31mred\\x1b[0m" in table and "\\x1b]8;;http://evil.example\\x07" in table
    assert "over\\rwrite" in table and "\\x9b2J" in table
    assert "note: server said: [/bold]" in table
    assert "weird [/bold]" in table  # the stored invalid category, in the table
    listing = _cli(db, "runs")
    _assert_clean(listing)
    assert f"m {MARKUP}"[:20] in listing.stdout
    runs_json = _cli(db, "runs", "--format", "json")
    _assert_clean(runs_json)
    models = {r["run_id"]: r["model"] for r in json.loads(runs_json.stdout)}
    assert models["markup"].startswith("m [/bold]") and "\x1b" not in models["markup"]


def test_show_json_escapes_every_control_character(db: Path, show: Callable[..., str]) -> None:
    data = json.loads(show(db, "markup", "json"))
    assert data["model"].startswith("m [/bold]")
    assert "\\x1b[31m" in data["model"]  # visible, not an escape sequence


def test_costs_are_flagged_never_negative_never_overflowing(
    db: Path, show: Callable[..., str]
) -> None:
    shown = show(db, "costs")
    # Counted: 0.25, -4000 as 0 and the provider's 0.5 estimate for the reply it flagged; not
    # counted: two 1e308, inf and a text. All but the first reported an unusable cost.
    assert "cost: ≥ $0.7500 over 7 requests (6 replies reported an unusable cost" in shown
    assert "4 of them not counted" in shown
    negative = show(db, "negative")
    assert "cost: $0.1250 over 2 requests (1 reply reported an unusable cost" in negative
    assert "counted as $0 or as estimated" in negative
    data = json.loads(show(db, "costs", "json"))
    assert data["cost_usd"] == 0.75 and data["cost_unusable"] == 6
    assert data["cost_uncounted"] == 4 and data["cost_is_lower_bound"] is True


def test_cost_rule_in_the_python_api(db: Path) -> None:
    with Journal(db) as journal:
        results = compute_results(journal, "negative")
    assert results.cost_usd == 0.125
    assert (results.cost_unusable, results.cost_uncounted) == (1, 0)


def test_gaussian_runs_before_a_finite_answer_show_nothing_to_fit(
    db: Path, show: Callable[..., str]
) -> None:
    for run_id in ("gauss-none", "gauss-invalid", "gauss-inf"):
        assert "no numbers to fit" in show(db, run_id)
        data = json.loads(show(db, run_id, "json"))
        assert data["metrics"]["gaussian"]["n"] == 0


def test_csv_export_neutralises_formulas_and_controls(db: Path) -> None:
    out = db.parent / "markup.csv"
    assert_ok(_cli(db, "export", "markup", "-o", str(out)))
    text = out.read_text()
    for char in ("\x1b", "\x07", "\x9b"):
        assert char not in text
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    for column in frame.columns:
        for cell in frame[column]:
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    contents = list(frame["content"])
    assert '\'=HYPERLINK("http://evil.example","x")' in contents
    assert "'+cmd|' /C calc'!A0" in contents and "'@SUM(1+1)" in contents
    assert "'-2+3+cmd|x" in contents and "'\t=1+1" in contents and "\\r=1+1" in contents
    assert "'=1+1" in list(frame["finish_reason"])
    numbers = pd.read_csv(out)
    assert numbers["p"].dtype.kind == "f" and numbers["sample_index"].dtype.kind == "i"
    assert numbers["valid"].dtype == bool


def test_csv_export_keeps_plain_negative_numbers(db: Path) -> None:
    out = api.export("gauss-neg", "csv", db.parent / "gauss.csv", db)
    assert list(pd.read_csv(out)["answer"]) == [-5, 103]


def test_parquet_export_keeps_the_stored_text_exactly(db: Path) -> None:
    """Parquet is typed data for programs, not a spreadsheet: text is kept as stored."""
    out = api.export("markup", "parquet", db.parent / "markup.parquet", db)
    frame = pd.read_parquet(out)
    with Journal(db) as journal:
        stored = [row["content"] for row in journal.samples("markup")]
    assert list(frame["content"]) == stored and FORMULAS[0] in stored
    assert frame["p"].dtype.kind == "f" and frame["valid"].dtype == bool


def test_show_csv_neutralises_condition_cells(tmp_path: Path, show: Callable[..., str]) -> None:
    """A journal whose (foreign) definition names a condition like a formula."""
    path = tmp_path / "j.db"
    experiment = get_experiment("single-flip").resolve(n=2, grid="t2")
    definition = experiment.model_dump(mode="json")
    definition["specs"][0]["key"] = "=cmd|x"
    with Journal(path) as journal:
        journal.create_run(
            run_id="formula", experiment=experiment.name, model="=evil", mode="sample",
            config={}, definition=definition, definition_hash="x", versions={},
        )  # fmt: skip
    printed = show(path, "formula", "csv")
    assert "'=cmd|x" in printed
    assert not any(line.startswith("=") for line in printed.splitlines())
    assert "=evil" in show(path, "formula")  # the table prints it as it is: not a spreadsheet


def test_error_lines_hold_no_escape_sequence(tmp_path: Path) -> None:
    bad_model = flipbench("run", "single-flip", "--model", f"nosuch{ANSI}/x", cwd=tmp_path)
    line = assert_one_line_error(bad_model)
    assert "\\x1b[31m" in line
    usage = flipbench("run", "single-flip", "--n", "\x1b[31m1", cwd=tmp_path)
    assert "\x1b" not in assert_one_line_error(usage)


def test_leaderboard_prints_hostile_model_names_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.out, "width", 400)
    db = tmp_path / "j.db"
    _calibrated_benchmark(db, "perfect")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET model = ?", (f"=cmd|x {MARKUP} | <b> {ANSI}",))
    printed = {}
    for fmt in ("table", "csv"):
        cli_battery.leaderboard_cmd(fmt, db)
        printed[fmt] = capsys.readouterr().out
    markdown = _cli(db, "leaderboard", "--format", "markdown")
    _assert_clean(markdown)
    printed["markdown"] = markdown.stdout
    for fmt, text in printed.items():
        assert "[link=http://evil.example]" in text, fmt
        for char in RAW_CONTROLS:
            assert char not in text, (fmt, char)
    csv_rows = list(csv.reader(io.StringIO(printed["csv"])))
    assert csv_rows[1][1].startswith("'=cmd|x")
    lines = printed["markdown"].splitlines()
    assert lines[2].count(" | ") == lines[0].count(" | ")  # the model's | is escaped
    assert "\\<b\\>" in lines[2]
