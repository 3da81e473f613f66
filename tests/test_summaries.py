"""Each run's S remembered in the journal (`flipbench.summaries`, issue 12 point 5): `runs`
reads it back instead of recomputing, and never shows a stale value."""

from __future__ import annotations

import math
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from flipbench import api
from flipbench.results import compute_results
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment
from tests.synthetic_runs import _flip, make_run


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        make_run(journal, "one", get_experiment("single-flip").resolve(n=6), _flip(8.0))
        make_run(journal, "two", get_experiment("single-flip").resolve(n=4), _flip(3.0), seed=1)
    return path


def _remembered(db: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT run_id, key, summary_json FROM summaries").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _s(db: Path) -> dict[str, float]:
    return {run.run_id: summary.s for run, summary in api.run_summaries(db)}


def test_s_is_computed_once_then_read_back_from_the_journal(db: Path) -> None:
    with Journal(db, create=False) as journal:
        truth = {r: compute_results(journal, r).s for r in ("one", "two")}
    assert _s(db) == pytest.approx(truth, abs=1e-12)
    assert set(_remembered(db)) == {"one", "two"}
    # Prove the listing reads the table: a planted value under a still-valid key is what it shows.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE summaries SET summary_json = '{\"S\": 9.5, \"grid_share\": 1.0}'"
                    " WHERE run_id = 'one'")  # fmt: skip
    assert _s(db)["one"] == 9.5
    assert _s(db)["two"] == pytest.approx(truth["two"], abs=1e-12)


def test_a_new_sample_or_status_makes_the_remembered_s_stale(db: Path) -> None:
    _s(db)
    with sqlite3.connect(db) as con:
        con.execute('UPDATE summaries SET summary_json = \'{"S": 9.5, "grid_share": 1.0}\'')
    with Journal(db) as journal:
        journal.record("one", SampleRecord(
            condition="0", sample_index=99, status="ok", request={}, response={}, valid=True,
            content="1", answer="1",
        ))  # fmt: skip
        journal.set_status("two", "complete")
    with Journal(db, create=False) as journal:
        truth = {r: compute_results(journal, r).s for r in ("one", "two")}
    assert _s(db) == pytest.approx(truth, abs=1e-12)  # both recomputed, neither is 9.5


def test_a_summary_from_another_flipbench_version_is_not_used(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s(db)
    with sqlite3.connect(db) as con:
        con.execute('UPDATE summaries SET summary_json = \'{"S": 9.5, "grid_share": 1.0}\'')
    monkeypatch.setattr("flipbench.journal_summaries.__version__", "99.0")
    assert 9.5 not in _s(db).values()


def test_a_garbled_cache_entry_is_recomputed(db: Path) -> None:
    _s(db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE summaries SET summary_json = 'not json' WHERE run_id = 'one'")
        con.execute("UPDATE summaries SET summary_json = '{\"S\": \"x\"}' WHERE run_id = 'two'")
    values = _s(db)
    assert all(math.isfinite(v) and v != 9.5 for v in values.values())


def test_a_read_only_journal_is_listed_and_left_unwritten(db: Path) -> None:
    """Read-only by its mode bits, which flipbench honours even for root."""
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    os.chmod(db, stat.S_IRUSR)
    os.chmod(db.parent, stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert len(_s(db)) == 2
    finally:
        os.chmod(db.parent, stat.S_IRWXU)
        os.chmod(db, stat.S_IRUSR | stat.S_IWUSR)
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before


def test_delete_forgets_the_runs_summary(db: Path) -> None:
    _s(db)
    api.delete_run("one", db)
    assert set(_remembered(db)) == {"two"}
