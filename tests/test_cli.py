"""End-to-end tests of the `flipbench` command, run as a real subprocess.

Bad input must end in one `error: …` line on stderr, exit code 2 and nothing written. The
output formats are checked on two real runs of the embedded model (one exact, one sampled),
made once per module.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_helpers import (
    RUN_TIMEOUT,
    assert_ok,
    assert_one_line_error,
    flipbench,
    snapshot,
)

from flipbench.metrics import step_likeness, wilson_interval
from flipbench.store import Journal

EXACT_ID = "cli-exact"
SAMPLE_ID = "cli-sample"
SAMPLE_N = 20
ZOOM_GRID = (0.45, 0.49, 0.50, 0.51, 0.55)
EXPORT_COLUMNS = {
    "run_id", "experiment", "condition", "p", "sample_index", "answer", "valid", "status",
}  # fmt: skip
CONDITION_KEYS = {"p", "rate", "ci_low", "ci_high", "n_valid", "n_total"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- bad input -------------------------------------------------------------------------------

RUN = ("run", "single-flip")

BAD_RUN_ARGS = {
    "unknown-local-model": (*RUN, "--model", "local/nope"),
    "unknown-provider": (*RUN, "--model", "nosuch/thing"),
    "unknown-grid": (*RUN, "--grid", "nope"),
    "n-zero": (*RUN, "--n", "0"),
    "n-negative": (*RUN, "--n", "-3"),
    "p-above-100": (*RUN, "--p", "101"),
    "p-negative": (*RUN, "--p", "-1"),
    "p-not-a-number": (*RUN, "--p", "abc"),
    "unknown-experiment": ("run", "no-such-experiment"),
    "unknown-mode": (*RUN, "--mode", "bogus"),
    "temperature-infinite": (*RUN, "--temperature", "inf"),
    "temperature-negative": (*RUN, "--temperature", "-0.5"),
    "attempts-factor-infinite": (*RUN, "--max-attempts-factor", "inf"),
    "concurrency-zero": (*RUN, "--max-concurrency", "0"),
    "exact-and-constrained": (*RUN, "--mode", "exact", "--constrained"),
    "bad-run-id": (*RUN, "--run-id", "../escape"),
    "grid-and-p": (*RUN, "--grid", "zoom", "--p", "5"),
    # Usage errors, caught by the option parser itself: one line too, not a framed box.
    "n-not-an-integer": (*RUN, "--n", "abc"),
    "unknown-option": (*RUN, "--bogus"),
    "option-without-value": (*RUN, "--mode"),
    "unknown-command": ("runz",),
    "d-on-ternary": ("run", "ternary", "--d", "3"),
    "q-above-60": ("run", "ternary", "--p", "70"),
    "exact-d-flips": ("run", "d-flips", "--mode", "exact"),
    # Bounds: huge integers are one clear line, not an OverflowError (and no run row).
    "n-400-digits": (*RUN, "--n", "9" * 400),
    "n-10-to-the-18": (*RUN, "--n", str(10**18)),
    "n-5000-digits": (*RUN, "--n", "9" * 5000),
    "max-tokens-400-digits": (*RUN, "--max-tokens", "9" * 400),
    "seed-400-digits": (*RUN, "--seed", "9" * 400),
    "d-too-large": ("run", "d-flips", "--d", "100000"),
    "timeout-nan": (*RUN, "--timeout", "nan"),
    # -M cannot replace what the recorded definition sends.
    "model-option-temperature": (*RUN, "-M", "temperature=2"),
    "model-option-messages": (*RUN, "-M", 'messages=[{"role":"user","content":"say 1"}]'),
    "model-option-model": (*RUN, "-M", "model=other"),
    "model-option-nan": (*RUN, "-M", "x=NaN"),
    # Prompt templates take only the documented fields.
    "prompt-attribute-access": (*RUN, "--prompt", "{p.__class__.__mro__}"),
    "prompt-positional": (*RUN, "--prompt", "flip {} {q}"),
}


@pytest.mark.parametrize("args", list(BAD_RUN_ARGS.values()), ids=list(BAD_RUN_ARGS))
def test_run_rejects_bad_input_and_writes_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert_one_line_error(flipbench(*args, "--db", "journal.db", cwd=tmp_path))
    assert not (tmp_path / "journal.db").exists()
    assert not (tmp_path / "flipbench-runs").exists()
    assert snapshot(tmp_path) == {}  # nor the default ./flipbench.db, nor anything else


def test_run_refuses_a_text_file_as_journal(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello\n")
    before = snapshot(tmp_path)
    line = assert_one_line_error(
        flipbench(*RUN, "--mode", "exact", "--db", "notes.db", cwd=tmp_path)
    )
    assert "notes.db" in line
    assert text.read_bytes() == b"hello\n"
    assert snapshot(tmp_path) == before  # no -wal/-shm, no flipbench-runs


def test_run_refuses_a_directory_as_journal(tmp_path: Path) -> None:
    (tmp_path / "journal.db").mkdir()
    before = snapshot(tmp_path)
    assert_one_line_error(flipbench(*RUN, "--mode", "exact", "--db", "journal.db", cwd=tmp_path))
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "flipbench-runs").exists()


def test_run_refuses_a_journal_in_a_missing_directory(tmp_path: Path) -> None:
    db = tmp_path / "missing" / "journal.db"
    assert_one_line_error(flipbench(*RUN, "--mode", "exact", "--db", str(db), cwd=tmp_path))
    assert not db.parent.exists()
    assert snapshot(tmp_path) == {}


@pytest.fixture
def empty_journal(tmp_path: Path) -> Path:
    """A valid journal holding no runs (made without running a model)."""
    db = tmp_path / "journal.db"
    with Journal(db):
        pass
    return db


@pytest.mark.parametrize("command", ["show", "export"])
def test_unknown_run_id_on_an_existing_journal(
    tmp_path: Path, empty_journal: Path, command: str
) -> None:
    before = snapshot(tmp_path)
    line = assert_one_line_error(
        flipbench(command, "no-such-run", "--db", "journal.db", cwd=tmp_path)
    )
    assert "no-such-run" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [("show", "some-run"), ("export", "some-run")])
def test_read_commands_do_not_create_a_missing_journal(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    assert_one_line_error(flipbench(*command, "--db", "absent.db", cwd=tmp_path))
    assert not (tmp_path / "absent.db").exists()
    assert snapshot(tmp_path) == {}


def test_runs_rejects_an_unknown_format(tmp_path: Path, empty_journal: Path) -> None:
    before = snapshot(tmp_path)
    line = assert_one_line_error(
        flipbench("runs", "--format", "xml", "--db", "journal.db", cwd=tmp_path)
    )
    assert "xml" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args", [("--help",), ("run", "--help")], ids=["app", "run"])
def test_help_exits_zero(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = flipbench(*args, cwd=tmp_path)
    assert_ok(proc)
    assert "Usage" in proc.stdout
    assert snapshot(tmp_path) == {}


# --- formats, on two real runs ---------------------------------------------------------------


@dataclass
class RealRun:
    run_id: str
    workdir: Path
    db: Path
    output: subprocess.CompletedProcess[str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return flipbench(*args, "--db", str(self.db), cwd=self.workdir)

    def show_json(self) -> dict[str, Any]:
        proc = self.cli("show", self.run_id, "--format", "json")
        assert_ok(proc)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def show_csv(self) -> list[dict[str, str]]:
        proc = self.cli("show", self.run_id, "--format", "csv")
        assert_ok(proc)
        return list(csv.DictReader(io.StringIO(proc.stdout)))

    @property
    def figure_dir(self) -> Path:
        return self.workdir / "flipbench-runs" / self.run_id


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-runs")


def _real_run(workdir: Path, run_id: str, *args: str) -> RealRun:
    db = workdir / "journal.db"
    proc = flipbench(
        *RUN, "--model", "local/smollm2", *args, "--run-id", run_id, "--db", str(db),
        cwd=workdir, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert_ok(proc)
    return RealRun(run_id, workdir, db, proc)


@pytest.fixture(scope="module")
def exact_run(workdir: Path) -> RealRun:
    return _real_run(workdir, EXACT_ID, "--mode", "exact")


@pytest.fixture(scope="module")
def sample_run(workdir: Path) -> RealRun:
    return _real_run(
        workdir, SAMPLE_ID, "--mode", "sample", "--constrained", "--n", str(SAMPLE_N),
        "--grid", "zoom", "--seed", "1",
    )  # fmt: skip


@pytest.fixture(scope="module")
def exact_json(exact_run: RealRun) -> dict[str, Any]:
    return exact_run.show_json()


@pytest.fixture(scope="module")
def sample_json(sample_run: RealRun) -> dict[str, Any]:
    return sample_run.show_json()


@pytest.mark.slow
def test_runs_lists_both_runs(exact_run: RealRun, sample_run: RealRun) -> None:
    proc = exact_run.cli("runs", "--format", "json")
    assert_ok(proc)
    rows = json.loads(proc.stdout)
    by_id = {r["run_id"]: r for r in rows}
    assert set(by_id) == {EXACT_ID, SAMPLE_ID}
    for row in rows:
        assert set(row) >= {"run_id", "experiment", "model", "mode", "status", "created_at"}
        assert row["experiment"] == "single-flip"
        assert row["model"] == "local/smollm2"
        assert row["status"] == "complete"
        assert row["created_at"]
    assert by_id[EXACT_ID]["mode"] == "exact"
    assert by_id[SAMPLE_ID]["mode"] == "sample"
    assert [r["run_id"] for r in rows] == [EXACT_ID, SAMPLE_ID]  # oldest first

    table = exact_run.cli("runs")
    assert_ok(table)
    assert EXACT_ID in table.stdout
    assert SAMPLE_ID in table.stdout


@pytest.mark.slow
def test_show_json_exact(exact_json: dict[str, Any]) -> None:
    assert exact_json["run_id"] == EXACT_ID
    assert exact_json["mode"] == "exact"
    assert exact_json["status"] == "complete"
    conditions = exact_json["conditions"]
    assert len(conditions) == 21
    assert [c["p"] for c in conditions] == pytest.approx([i / 20 for i in range(21)])
    for c in conditions:
        assert set(c) >= CONDITION_KEYS | {"coverage"}
        assert c["ci_low"] == c["rate"] == c["ci_high"]
        assert 0.0 <= c["rate"] <= 1.0
        assert 0.0 < c["coverage"] < 1.0
        assert c["n_valid"] == c["n_total"] == 1
    s = exact_json["S"]
    expected = step_likeness([c["p"] for c in conditions], [c["rate"] for c in conditions])
    assert s["value"] == pytest.approx(expected, rel=1e-12)
    assert s["low"] == s["value"] == s["high"]


@pytest.mark.slow
def test_show_json_sample(sample_json: dict[str, Any]) -> None:
    assert sample_json["run_id"] == SAMPLE_ID
    assert sample_json["mode"] == "sample"
    assert sample_json["status"] == "complete"
    conditions = sample_json["conditions"]
    assert [c["p"] for c in conditions] == pytest.approx(list(ZOOM_GRID))
    for c in conditions:
        assert set(c) >= CONDITION_KEYS
        assert c["n_valid"] == SAMPLE_N
        assert c["n_total"] >= c["n_valid"]
        assert 0.0 <= c["ci_low"] <= c["rate"] <= c["ci_high"] <= 1.0
        k = round(c["rate"] * c["n_valid"])
        assert c["k"] == k
        assert (c["ci_low"], c["ci_high"]) == pytest.approx(wilson_interval(k, c["n_valid"]))
    s = sample_json["S"]
    expected = step_likeness([c["p"] for c in conditions], [c["rate"] for c in conditions])
    assert s["value"] == pytest.approx(expected, rel=1e-12)
    assert s["low"] <= s["high"]


def _check_show_csv(rows: list[dict[str, str]], data: dict[str, Any], exact: bool) -> None:
    columns = set(rows[0])
    assert columns >= CONDITION_KEYS | {"condition"}
    assert ("coverage" in columns) == exact
    body = rows  # one row per condition only: S and the summary are in summary-csv
    assert len(body) == len(data["conditions"])
    for row, c in zip(body, data["conditions"], strict=True):
        assert row["condition"] == c["condition"]
        for key in ("p", "rate", "ci_low", "ci_high"):
            assert float(row[key]) == pytest.approx(c[key], rel=1e-12)
        assert int(row["n_valid"]) == c["n_valid"]
        assert int(row["n_total"]) == c["n_total"]
        if exact:
            assert float(row["coverage"]) == pytest.approx(c["coverage"], rel=1e-12)


def _check_summary_csv(run: RealRun, data: dict[str, Any]) -> None:
    proc = run.cli("show", run.run_id, "--format", "summary-csv")
    assert_ok(proc)
    s_row = next(r for r in csv.DictReader(io.StringIO(proc.stdout)) if r["name"] == "S")
    assert float(s_row["value"]) == pytest.approx(data["S"]["value"], rel=1e-12)
    assert float(s_row["ci_low"]) == pytest.approx(data["S"]["low"], rel=1e-12)
    assert float(s_row["ci_high"]) == pytest.approx(data["S"]["high"], rel=1e-12)


@pytest.mark.slow
def test_show_csv_exact(exact_run: RealRun, exact_json: dict[str, Any]) -> None:
    _check_show_csv(exact_run.show_csv(), exact_json, exact=True)
    _check_summary_csv(exact_run, exact_json)


@pytest.mark.slow
def test_show_csv_sample(sample_run: RealRun, sample_json: dict[str, Any]) -> None:
    _check_show_csv(sample_run.show_csv(), sample_json, exact=False)
    _check_summary_csv(sample_run, sample_json)


@pytest.mark.slow
def test_export_csv_and_parquet_agree(sample_run: RealRun, sample_json: dict[str, Any]) -> None:
    out = sample_run.workdir / "exports"
    csv_path, parquet_path = out / "samples.csv", out / "samples.parquet"
    for fmt, path in (("csv", csv_path), ("parquet", parquet_path)):
        proc = sample_run.cli("export", SAMPLE_ID, "--format", fmt, "-o", str(path))
        assert_ok(proc)
        assert path.is_file()

    from_csv = pd.read_csv(csv_path)
    from_parquet = pd.read_parquet(parquet_path)
    n_rows = sum(c["n_total"] for c in sample_json["conditions"])
    assert n_rows == len(ZOOM_GRID) * SAMPLE_N  # constrained: no invalid replies
    for frame in (from_csv, from_parquet):
        assert len(frame) == n_rows
        assert set(frame.columns) >= EXPORT_COLUMNS
        assert not frame.duplicated(["condition", "sample_index"]).any()
        assert set(frame["run_id"]) == {SAMPLE_ID}
        assert set(frame["experiment"]) == {"single-flip"}
        assert frame["valid"].astype(bool).all()
        assert frame.groupby("condition").size().to_dict() == {
            c["condition"]: c["n_total"] for c in sample_json["conditions"]
        }
        assert sorted(frame["p"].unique()) == pytest.approx(list(ZOOM_GRID))
        # The per-sample answers add up to the rates `show` reports.
        ones = frame.assign(one=frame["answer"].astype(str) == "1").groupby("condition")["one"]
        for c in sample_json["conditions"]:
            assert ones.sum()[c["condition"]] == c["k"]

    assert list(from_csv.columns) == list(from_parquet.columns)
    # Same table: the parquet rows, written as CSV and read back, equal the CSV export.
    parquet_as_csv = pd.read_csv(io.StringIO(from_parquet.to_csv(index=False)))
    pd.testing.assert_frame_equal(from_csv, parquet_as_csv)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["exact", "sample"])
def test_figures_are_written(which: str, request: pytest.FixtureRequest) -> None:
    run: RealRun = request.getfixturevalue(f"{which}_run")
    png = run.figure_dir / "response_curve.png"
    svg = run.figure_dir / "response_curve.svg"
    assert png.is_file()
    assert svg.is_file()
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000
    root = ET.parse(svg).getroot()
    assert root.tag.rpartition("}")[2] == "svg"
    # The run's own output names both figures.
    for path in (png, svg):
        assert f"figure: {path.resolve()}" in run.output.stdout


@pytest.mark.slow
@pytest.mark.parametrize("which", ["exact", "sample"])
def test_run_prints_the_table_and_s(which: str, request: pytest.FixtureRequest) -> None:
    run: RealRun = request.getfixturevalue(f"{which}_run")
    data: dict[str, Any] = request.getfixturevalue(f"{which}_json")
    s = data["S"]["value"]
    assert not math.isnan(s)
    assert run.run_id in run.output.stdout
    assert f"S = {s:.3f}" in run.output.stdout


def test_read_commands_refuse_an_empty_file_and_leave_it_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert_one_line_error(flipbench("show", "x", "--db", str(empty), cwd=tmp_path))
    assert_one_line_error(flipbench("runs", "--db", str(empty), cwd=tmp_path))
    assert empty.stat().st_size == 0


@pytest.mark.slow
def test_export_to_a_directory_is_a_clear_error(sample_run: RealRun) -> None:
    target = sample_run.workdir / "a-directory"
    target.mkdir(exist_ok=True)
    line = assert_one_line_error(
        flipbench("export", SAMPLE_ID, "--db", str(sample_run.db), "-o", str(target),
                  cwd=sample_run.workdir)
    )  # fmt: skip
    assert "directory" in line


@pytest.mark.slow
def test_demo_is_the_offline_main_job(tmp_path: Path) -> None:
    """What `make demo` runs: the single flip in exact mode, the table, S and the figure."""
    proc = flipbench("demo", "--db", "demo.db", cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert_ok(proc)
    assert proc.stdout.count("S = ") == 1, proc.stdout  # once, under the table
    s = float(proc.stdout.split("S = ")[1].split()[0])
    assert 1.5 < s < 2.0  # SmolLM2 says "1" (≈ 0.97) whatever p is asked
    figure = Path(proc.stdout.split("figure: ")[1].split()[0])
    assert figure.is_file() and figure.read_bytes()[:8] == PNG_MAGIC
    assert "it ignores p" in proc.stdout


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--n", "9" * 400), "error: --n: Input should be less than or equal to 1000000"),
        (("--timeout", "inf"), "error: --timeout: Input should be a finite number"),
        (("-M", "temperature=0"),
         "error: -M temperature=… would bypass the recorded definition; use --temperature"),
        (("--prompt", "{p.__class__.__mro__}"),
         "error: prompt template field {p.__class__.__mro__} is not allowed; use only {p}, {q}"),
    ],
)  # fmt: skip
def test_bound_errors_name_the_flag(tmp_path: Path, args: tuple[str, ...], line: str) -> None:
    assert assert_one_line_error(flipbench(*RUN, *args, cwd=tmp_path)) == line


def test_show_prints_the_noise_floor_beside_s(tmp_path: Path) -> None:
    """Beside S: what a perfectly calibrated model scores at this N and grid, and S corrected
    for noise; a game also shows the trend variant of its direction score."""
    from synthetic_runs import journal_with, run_id_of

    journal_with(tmp_path, ["flip", "matching-pennies"]).close()
    flip = run_id_of("flip", "model-a")
    table = flipbench("show", flip, "--db", "j.db", cwd=tmp_path)
    assert_ok(table)
    line = next(x for x in table.stdout.splitlines() if x.startswith("S = "))
    assert "95% CI [" in line and "noise floor at this N and grid: " in line, line
    shown = flipbench("show", flip, "--format", "json", "--db", "j.db", cwd=tmp_path)
    assert_ok(shown)
    data = json.loads(shown.stdout)
    assert f"noise floor at this N and grid: {data['S_noise_floor']:.3f}" in line
    assert data["S_noise_floor"] > 0.0
    assert data["S_interval_method"] == "bias-aware basic bootstrap"
    assert data["S"]["low"] <= data["S_corrected"] <= data["S"]["high"]
    assert data["metrics"]["S_noise_floor"] == data["S_noise_floor"]
    game = flipbench("show", run_id_of("matching-pennies", "model-a"), "--db", "j.db",
                     cwd=tmp_path)  # fmt: skip
    assert_ok(game)
    assert "trend variant d_trend = " in game.stdout and "noise floor" in game.stdout
