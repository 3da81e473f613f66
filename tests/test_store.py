"""The journal is a real SQLite file in WAL mode that refuses duplicates and foreign files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flipbench.errors import FlipbenchError
from flipbench.store import Journal, SampleRecord


def _run(journal: Journal, run_id: str = "r1") -> None:
    journal.create_run(
        run_id=run_id, experiment="single-flip", model="local/x", mode="sample",
        config={"n": 2}, definition={"name": "single-flip"}, definition_hash="abc",
        versions={"flipbench": "0"},
    )  # fmt: skip


def _sample(condition: str, index: int, valid: bool = True) -> SampleRecord:
    return SampleRecord(
        condition=condition, sample_index=index, status="ok",
        request={"messages": []}, response={"choices": []}, valid=valid,
        answer="1" if valid else None, invalid_category=None if valid else "unparseable",
    )  # fmt: skip


def test_rows_are_committed_immediately_and_visible_to_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path)
    _run(journal)
    journal.record("r1", _sample("p=10", 0))
    journal.record("r1", _sample("p=10", 1, valid=False))
    other = sqlite3.connect(path)  # a second process would see the same
    assert other.execute("SELECT COUNT(*) FROM samples").fetchone() == (2,)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert journal.condition_counts("r1") == {"p=10": (1, 2, 2)}
    other.close()
    journal.close()


def test_duplicate_sample_index_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        _run(journal)
        journal.record("r1", _sample("p=10", 0))
        with pytest.raises(sqlite3.IntegrityError):
            journal.record("r1", _sample("p=10", 0))


def test_duplicate_run_id_is_a_user_error(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        _run(journal)
        with pytest.raises(FlipbenchError, match="--resume r1"):
            _run(journal)


def test_run_round_trips_config_and_status(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        _run(journal)
        journal.set_status("r1", "interrupted", "stopped")
        run = journal.get_run("r1")
        assert (run.status, run.message, run.config) == ("interrupted", "stopped", {"n": 2})
        with pytest.raises(FlipbenchError, match="no run 'nope'"):
            journal.get_run("nope")


def test_foreign_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello, not a database")
    with pytest.raises(FlipbenchError, match="not a flipbench"):
        Journal(path)
    assert path.read_text() == "hello, not a database"
    with pytest.raises(FlipbenchError, match="directory"):
        Journal(tmp_path)


def test_missing_journal_is_not_created_when_reading(tmp_path: Path) -> None:
    with pytest.raises(FlipbenchError, match="no journal"):
        Journal(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()
