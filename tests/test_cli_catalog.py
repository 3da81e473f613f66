"""`flipbench runs`, `experiments`, `delete`, `--version` and `--help`: the commands a new user
meets first (issue 14, point 3). Journals are written directly (synthetic runs, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from flipbench import __version__, cli
from flipbench.store import Journal, RunLock
from flipbench.tasks import EXPERIMENTS, get_experiment
from tests.cli_helpers import assert_ok, assert_one_line_error, flipbench, snapshot
from tests.synthetic_runs import _flip, make_run

#: Ids as `run` makes them (32 characters) and as the importer does (longer still).
LONG_IDS = ("20261130-155712-single-flip-fe05", "ftm-fig6-business-extended-qwen3-vl-8b-instruct")
LONG_MODEL = "openrouter/moonshotai/kimi-k2-0905-preview"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Three runs: a stopped one with 6 of 21 conditions, a complete one, a d-flips one."""
    db = tmp_path / "j.db"
    flip = get_experiment("single-flip").resolve(n=5)
    keys = [c.key for c in flip.conditions()]
    with Journal(db) as j:
        make_run(j, LONG_IDS[0], flip, _flip(8.0), model=LONG_MODEL, skip=frozenset(keys[6:]))
        zoom = get_experiment("single-flip").resolve(grid="zoom", n=4, temperature=2.0)
        make_run(j, LONG_IDS[1], zoom, _flip(8.0))
        j.set_status(LONG_IDS[1], "complete")
        make_run(j, "short", get_experiment("d-flips").resolve(n=3, d=3), _flip(8.0))
    return db


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("columns", [40, 60, 80, 120, 200])
def test_runs_never_cuts_an_id_and_fits_the_width(journal: Path, columns: int) -> None:
    proc = flipbench("runs", "--db", str(journal), cwd=journal.parent, columns=columns)
    assert_ok(proc)
    lines = _lines(proc.stdout)
    for run_id in (*LONG_IDS, "short"):
        assert any(run_id in line for line in lines), (run_id, proc.stdout)
    # Only an id longer than the terminal is wider: it is printed whole, on a line of its own.
    assert all(len(line) <= columns or line in LONG_IDS for line in lines), proc.stdout
    assert "…" not in proc.stdout
    flat = " ".join(proc.stdout.split())
    for shown in ("single-flip", "d-flips", "sample", "stopped", "complete", "zoom", "default"):
        assert shown in flat, (shown, proc.stdout)


def test_runs_shows_n_grid_t_status_and_s(journal: Path) -> None:
    wide = flipbench("runs", "--db", str(journal), cwd=journal.parent, columns=200)
    assert_ok(wide)
    header = next(line for line in wide.stdout.splitlines() if line.strip().startswith("id"))
    for column in ("experiment", "model", "mode", "N", "grid", "T", "status", "S"):
        assert f" {column} " in f" {header} ", header
    row = next(line for line in wide.stdout.splitlines() if LONG_IDS[1] in line).split()
    assert row[row.index("zoom") - 1] == "4" and row[row.index("zoom") + 1] == "2"  # N, grid, T
    assert "d-flips (D = 3)" in wide.stdout
    assert "partial" in wide.stdout  # the stopped run's S is marked, and the mark explained
    listing = json.loads(flipbench("runs", "--format", "json", "--db", str(journal),
                                   cwd=journal.parent).stdout)  # fmt: skip
    by_id = {r["run_id"]: r for r in listing}
    stopped, complete = by_id[LONG_IDS[0]], by_id[LONG_IDS[1]]
    assert (stopped["n"], stopped["grid"], stopped["temperature"]) == (5, "default", 1.0)
    assert stopped["S_partial"] is True and stopped["grid_share"] == pytest.approx(6 / 21)
    assert (complete["n"], complete["grid"], complete["temperature"]) == (4, "zoom", 2.0)
    assert complete["S_partial"] is False and 0.0 <= complete["S"] <= 2.0
    # One flip per reply where 3 are asked: no valid answer, so no S (null, not NaN).
    assert by_id["short"]["d"] == 3 and by_id["short"]["S"] is None
    row = next(line for line in wide.stdout.splitlines() if LONG_IDS[1] in line)
    assert f"{complete['S']:.3f}" in row and f"{complete['S']:.3f}*" not in row
    assert f"{stopped['S']:.3f}*" in wide.stdout


def test_an_empty_journal_says_how_to_make_a_run(tmp_path: Path) -> None:
    Journal(tmp_path / "j.db").close()
    proc = flipbench("runs", "--db", "j.db", cwd=tmp_path, columns=80)
    assert_ok(proc)
    assert "no runs in j.db yet" in proc.stdout and "flipbench demo" in proc.stdout
    assert max(map(len, _lines(proc.stdout))) <= 80


def test_experiments_lists_every_experiment_its_grids_and_defaults(tmp_path: Path) -> None:
    table = flipbench("experiments", cwd=tmp_path, columns=80)
    assert_ok(table)
    flat = " ".join(table.stdout.split())
    for name, definition in EXPERIMENTS.items():
        assert name in flat
        for grid in definition.grids:
            assert f"{grid}" in flat
    assert "--n 100" in flat and "--max-tokens 4096" in flat and "--d 2" in flat
    data = json.loads(flipbench("experiments", "--format", "json", cwd=tmp_path).stdout)
    assert [e["name"] for e in data] == sorted(EXPERIMENTS)
    flip = next(e for e in data if e["name"] == "single-flip")
    assert flip["grids"]["zoom"] == ["45", "49", "50", "51", "55"]
    assert (flip["n"], flip["temperature"], flip["default_grid"]) == (100, 1.0, "default")
    d_flips = next(e for e in data if e["name"] == "d-flips")
    assert d_flips["max_tokens"] == 20 and d_flips["d"] == 2  # as a run gets them: 2D + 16
    assert snapshot(tmp_path) == {}


def test_delete_removes_the_rows_and_the_folder(journal: Path) -> None:
    folder = journal.parent / "flipbench-runs" / "short"
    folder.mkdir(parents=True)
    (folder / "response_curve.png").write_bytes(b"png")
    proc = flipbench("delete", "short", "--db", str(journal), cwd=journal.parent)
    assert_ok(proc)
    assert "deleted run short" in proc.stdout
    assert not folder.exists()
    with Journal(journal, create=False) as j:
        assert [r.run_id for r in j.list_runs()] == list(LONG_IDS)
        assert list(j.samples("short")) == []
        assert list(j.samples(LONG_IDS[0]))  # the others untouched
    assert not (journal.parent / ".j.db.locks").exists()


def test_delete_of_an_unknown_id_is_one_line_and_changes_nothing(journal: Path) -> None:
    before = snapshot(journal.parent)
    line = assert_one_line_error(flipbench("delete", "nope", "--db", "j.db", cwd=journal.parent))
    assert "no run 'nope'" in line and "flipbench runs" in line
    assert snapshot(journal.parent) == before
    assert_one_line_error(flipbench("delete", "x", "--db", "absent.db", cwd=journal.parent))
    assert not (journal.parent / "absent.db").exists()


def test_delete_refuses_a_running_run(journal: Path) -> None:
    with RunLock(journal, "short"):  # as the process executing it holds it
        before = {k: v for k, v in snapshot(journal.parent).items() if ".locks" not in k}
        line = assert_one_line_error(
            flipbench("delete", "short", "--db", "j.db", cwd=journal.parent)
        )
        after = {k: v for k, v in snapshot(journal.parent).items() if ".locks" not in k}
    assert "short is running" in line
    assert after == before


def test_version(tmp_path: Path) -> None:
    proc = flipbench("--version", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout == f"flipbench {__version__}\n"


def test_help_keeps_every_option_name_whole_at_80_columns(tmp_path: Path) -> None:
    commands = typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]
    for name in ("run", "show", "bench", "runs", "delete"):
        proc = flipbench(name, "--help", cwd=tmp_path, columns=80)
        assert_ok(proc)
        assert "…" not in proc.stdout
        words = set(proc.stdout.replace(",", " ").split())
        for param in commands[name].params:
            for opt in param.opts + param.secondary_opts:
                if opt.startswith("-"):
                    assert opt in words, (name, opt, proc.stdout)
    run = flipbench("run", "--help", cwd=tmp_path, columns=80)
    flat = " ".join(run.stdout.split())
    assert "single-flip" in flat and "flipbench experiments" in flat
    top = flipbench("--help", cwd=tmp_path, columns=80)
    assert "flipbench experiments" in " ".join(top.stdout.split())
    assert "--version" in top.stdout
