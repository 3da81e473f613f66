"""`flipbench compare`: the imported paper runs and a new run in one figure and one table, and
runs whose definitions differ refused (with the fields named) unless --force.

The paper's data is imported from the copy shipped in the package, cut to Fig. 1 (the other
files keep their header only) so that the import takes a second; the new runs are made through
the real run path with an in-process backend (tests/report_runs.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from flipbench import api
from flipbench.report.compare import definition_differences
from flipbench.results import compute_results
from flipbench.store import Journal
from tests import synthetic_runs
from tests.cli_helpers import assert_ok, assert_one_line_error, flipbench
from tests.paper_data import DATA
from tests.report_runs import make_run

PAPER_RUN = "ftm-fig1-claude-4.5-sonnet"


def _fig1_only(folder: Path) -> Path:
    shutil.copytree(DATA, folder)
    for csv in folder.glob("*.csv"):
        if csv.name != "fig1_single_flip.csv":
            header = csv.read_text(encoding="utf-8-sig").splitlines()[0]
            csv.write_text(header + "\n")
    return folder


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """(db, a run like the paper's, a run at another temperature)."""
    folder = tmp_path_factory.mktemp("compare")
    db = folder / "j.db"
    api.import_data("failure-to-mix", _fig1_only(folder / "data"), db)
    with pytest.MonkeyPatch.context() as monkeypatch:
        same = make_run(monkeypatch, db, model="steep/coin", grid=None, n=10)
        warm = make_run(monkeypatch, db, model="steep/warm", grid=None, n=10, temperature=0.5)
    yield db, same, warm


def test_paper_runs_and_a_new_run_share_one_figure_and_table(
    journal: tuple[Path, str, str],
) -> None:
    db, same, _ = journal
    figures = db.parent / "figures"
    proc = flipbench(
        "compare", same, "--paper", "--db", str(db), "--out", str(figures), "--name", "fig1",
        cwd=db.parent,
    )  # fmt: skip
    assert_ok(proc)
    assert "paper/claude-4.5-sonnet" in proc.stdout and "steep/coin" in proc.stdout
    assert f"figure: {figures / 'fig1.png'}" in proc.stdout
    svg = (figures / "fig1.svg").read_text()  # one figure, both runs in its legend
    assert "paper/claude-4.5-sonnet" in svg and "steep/coin" in svg
    # What differs but does not block is said: N and the grid's name.
    assert "note: n: 10" in proc.stdout and "note: grid:" in proc.stdout
    assert (figures / "fig1.png").stat().st_size > 10_000


def test_json_has_both_runs_per_condition(journal: tuple[Path, str, str]) -> None:
    db, same, _ = journal
    proc = flipbench("compare", same, PAPER_RUN, "--format", "json", "--db", str(db),
                     cwd=db.parent)  # fmt: skip
    assert_ok(proc)
    view = json.loads(proc.stdout)
    assert [r["run_id"] for r in view["runs"]] == [same, PAPER_RUN]
    assert len(view["conditions"]) == 21
    assert all(len(c["runs"]) == 2 and None not in c["runs"] for c in view["conditions"])
    fields = {d["field"]: d["blocking"] for d in view["differences"]}
    assert fields == {"n": False, "grid": False}


def test_differing_definitions_are_refused_naming_the_fields(
    journal: tuple[Path, str, str],
) -> None:
    db, _, warm = journal
    proc = flipbench("compare", warm, PAPER_RUN, "--db", str(db), cwd=db.parent)
    line = assert_one_line_error(proc)
    assert "temperature: 0.5" in line and "1.0" in line and "--force" in line
    forced = flipbench("compare", warm, PAPER_RUN, "--force", "--db", str(db), cwd=db.parent)
    assert_ok(forced)
    assert "differs (forced): temperature" in forced.stdout
    # --paper finds no paper run asked at T = 0.5, and says how to get paper runs.
    none = flipbench("compare", warm, "--paper", "--db", str(db), cwd=db.parent)
    assert "failure-to-mix" in assert_one_line_error(none)


def test_runs_of_different_experiments_are_never_compared(journal: tuple[Path, str, str]) -> None:
    db, same, _ = journal
    experiment, answer = synthetic_runs.kinds()["ternary"]
    with Journal(db) as j:
        synthetic_runs.make_run(j, "ternary-run", experiment, answer)
    for args in (("ternary-run",), ("ternary-run", "--force")):
        proc = flipbench("compare", same, *args, "--db", str(db), cwd=db.parent)
        assert "different experiments" in assert_one_line_error(proc)
    one = flipbench("compare", same, "--db", str(db), cwd=db.parent)
    assert "at least two runs" in assert_one_line_error(one)
    unknown = flipbench("compare", same, "no-such-run", "--db", str(db), cwd=db.parent)
    assert "no-such-run" in assert_one_line_error(unknown)


def test_a_grid_with_other_conditions_is_noted_not_refused(
    journal: tuple[Path, str, str],
) -> None:
    """The paper's models were not all run on one grid: rates compare point by point."""
    db, same, _ = journal
    with Journal(db, create=False) as j:
        a, b = compute_results(j, same), compute_results(j, PAPER_RUN)
    fewer = b.experiment.model_copy(update={"specs": b.experiment.specs[:5]})
    other = b.experiment.model_copy(
        update={"specs": (b.experiment.specs[0].model_copy(update={"x": 0.5}),)}
    )
    b_fewer, b_other = replace(b, experiment=fewer), replace(b, experiment=other)
    (specs,) = [d for d in definition_differences([a, b_fewer]) if d.field == "specs"]
    assert not specs.blocking and "not S" in specs.line()
    (specs,) = [d for d in definition_differences([a, b_other]) if d.field == "specs"]
    assert specs.blocking
