"""The journal defends itself (issue 9, points 6-8): run ids from a journal never become paths
outside `flipbench-runs/`, a run is held by a real OS lock for its whole life, and foreign,
newer, read-only or brand-new journals are handled without a traceback or a stray write.

Everything runs on real SQLite files on disk; races use real processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from cli_helpers import FLIPBENCH, assert_ok, assert_one_line_error, flipbench, snapshot

from flipbench import api
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from flipbench.store import SCHEMA_VERSION, Journal, RunLock, SampleRecord, validate_run_id
from flipbench.tasks import get_experiment
from flipbench.testing.fault_server import FaultConfig, FaultServer, running_in_thread

MODEL = "openrouter/fault/model"
P_VALUES = ["30", "70"]
N = 2


def make_run(db: Path, run_id: str = "r1", *, status: str = "interrupted") -> None:
    """A real, resumable run on the fault server's model, one valid sample per condition short."""
    experiment = get_experiment("single-flip").resolve(p_values=P_VALUES, n=N)
    config = RunConfig(
        experiment="single-flip", model=MODEL, p_values=P_VALUES, n=N, run_id=run_id,
        timeout_s=20, max_retries=1,
    )  # fmt: skip
    with Journal(db) as journal:
        journal.create_run(
            run_id=run_id,
            experiment=experiment.name,
            model=MODEL,
            mode="sample",
            config=config.model_dump(mode="json"),
            definition=experiment.model_dump(mode="json"),
            definition_hash=experiment.definition_hash(),
            versions={"flipbench": "t", "model": {}},
        )
        for condition in experiment.conditions():
            journal.record(
                run_id,
                SampleRecord(
                    condition=condition.key,
                    sample_index=0,
                    status="ok",
                    request={"messages": []},
                    response={"choices": []},
                    valid=True,
                    answer="1",
                ),
            )
        journal.set_status(run_id, status, None)


def forge(db: Path, sql: str, *params: object) -> None:
    """Change the journal behind flipbench's back, as a hostile or damaged file would be."""
    with closing(sqlite3.connect(db)) as raw, raw:
        raw.execute(sql, params)


def rows_per_condition(db: Path, run_id: str) -> dict[str, list[int]]:
    with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as raw:
        rows = raw.execute(
            "SELECT condition, sample_index FROM samples WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
    found: dict[str, list[int]] = {}
    for condition, index in rows:
        found.setdefault(condition, []).append(index)
    return found


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key for the fault server's model (it is checked before anything else)."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-test")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    """The scripted OpenRouter server, slow enough (0.6 s a reply) for processes to race."""
    with running_in_thread(FaultConfig(latency_s=0.6)) as fault_server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", fault_server.base_url)
        yield fault_server


# --- run ids -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", ["evil\n", "../../../X", "/abs/path", "..", ".hidden", "a/b", "a\x1b[2J", "", "x" * 101]
)
def test_bad_run_ids_are_refused_everywhere_they_are_used(tmp_path: Path, bad: str) -> None:
    db = tmp_path / "j.db"
    make_run(db)
    with pytest.raises(FlipbenchError, match="must be letters, digits"):
        validate_run_id(bad)
    with Journal(db) as journal, pytest.raises(FlipbenchError, match="must be letters, digits"):
        journal.get_run(bad)
    with pytest.raises(FlipbenchError, match="must be letters"):
        api.run_dir(db, bad)
    with pytest.raises(FlipbenchError, match="must be letters"):
        api.resume_run(bad, db)
    assert validate_run_id("20250101-000000-single-flip-ab12") == "20250101-000000-single-flip-ab12"


@pytest.mark.parametrize("evil", ["../../../X", "/abs/path"])
def test_a_journal_holding_a_traversal_run_id_writes_nothing_outside(
    tmp_path: Path, evil: str
) -> None:
    """A journal is data: a run id read from it is checked like one typed on the command line."""
    home = tmp_path / "a" / "b" / "c"
    home.mkdir(parents=True)
    db = home / "j.db"
    make_run(db)
    forge(db, "UPDATE samples SET run_id = ?", evil)
    forge(db, "UPDATE runs SET run_id = ?, status = 'interrupted'", evil)
    before = snapshot(tmp_path)
    for command in (("export", evil), ("run", "--resume", evil)):
        line = assert_one_line_error(flipbench(*command, "--db", str(db), cwd=home))
        assert "must be letters" in line
    assert snapshot(tmp_path) == before
    assert not Path("/abs/path").exists()
    listing = flipbench("runs", "--format", "json", "--db", str(db), cwd=home)
    assert_ok(listing)  # still listed, so it can be seen and dealt with
    assert [r["run_id"] for r in json.loads(listing.stdout)] == [evil]


def test_a_symlinked_run_folder_pointing_out_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    make_run(db)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "flipbench-runs").mkdir()
    (tmp_path / "flipbench-runs" / "r1").symlink_to(outside)
    with pytest.raises(FlipbenchError, match="outside"):
        api.export("r1", "csv", db=db)
    assert list(outside.iterdir()) == []
    assert api.run_dir(db, "r2") == tmp_path.resolve() / "flipbench-runs" / "r2"


def test_a_bad_benchmark_id_is_one_error_line(tmp_path: Path) -> None:
    make_run(tmp_path / "j.db")
    before = snapshot(tmp_path)
    line = assert_one_line_error(
        flipbench("bench", "--resume", "../up", "--db", "j.db", cwd=tmp_path)
    )
    assert "benchmark id '../up'" in line
    assert snapshot(tmp_path) == before


# --- the run lock ------------------------------------------------------------------------------
_HOLDER = """
import sys, time
from pathlib import Path
from flipbench.store import Journal, RunLock
lock = RunLock(Path(sys.argv[1]), sys.argv[2]).acquire()
with Journal(Path(sys.argv[1])) as journal:
    journal.set_status(sys.argv[2], "running")
print("held", flush=True)
time.sleep(600)
"""


def _hold(db: Path, run_id: str) -> subprocess.Popen[str]:
    """Another process holding the run, as a running `flipbench run` does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), run_id], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_the_lock_excludes_a_second_holder_and_dies_with_its_holder(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    make_run(db)
    with RunLock(db, "r1") as first:
        assert RunLock.held(db, "r1") is True
        with pytest.raises(
            FlipbenchError, match=rf"being run by another process \(pid {os.getpid()}\)"
        ):
            RunLock(db, "r1").acquire()
        assert first.path.exists()
    assert RunLock.held(db, "r1") is False
    assert snapshot(tmp_path).keys() == {"j.db"}  # a clean release leaves no lock file

    holder = _hold(db, "r1")
    try:
        assert RunLock.held(db, "r1") is True
        assert api.list_runs(db)[0].display_status == "running"
        with pytest.raises(FlipbenchError, match=f"pid {holder.pid}"):
            api.resume_run("r1", db)
        holder.send_signal(signal.SIGKILL)  # no cleanup: the kernel drops the lock; not reaped
        deadline = time.monotonic() + 10
        while RunLock.held(db, "r1") and time.monotonic() < deadline:
            time.sleep(0.01)
        run = api.list_runs(db)[0]
        assert (run.status, run.display_status, run.pid) == ("running", "stopped", holder.pid)
        with RunLock(db, "r1") as taken:  # a dead holder's lock is simply taken: nothing stale
            assert taken.previous["pid"] == holder.pid
            # the holder is a zombie (not reaped): its pid "lives", but it left this lock behind,
            # so continuing its run needs no --force
            assert taken.check_takeover(run) is False
    finally:
        holder.kill()
        holder.wait()


def test_two_resumes_started_at_the_same_instant_exactly_one_runs(
    tmp_path: Path, server: FaultServer
) -> None:
    db = tmp_path / "j.db"
    make_run(db)
    env = {k: v for k, v in os.environ.items() if k != "FLIPBENCH_DB"}
    command = [str(FLIPBENCH), "run", "--resume", "r1", "--no-progress", "--db", str(db)]
    procs = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    assert_ok(winners[0])
    line = assert_one_line_error(losers[0])
    assert "r1 is being run by another process (pid " in line
    assert "IntegrityError" not in losers[0].stderr
    with Journal(db, create=False) as journal:
        assert journal.get_run("r1").status == "complete"  # the loser marked nothing
    assert rows_per_condition(db, "r1") == {"p=30": [0, 1], "p=70": [0, 1]}  # one top-up each
    assert server.counts["requests"] == 2


def test_force_takes_over_a_run_whose_recorded_process_holds_no_lock(
    tmp_path: Path, server: FaultServer
) -> None:
    """pid 1 always lives (in a container it is the run's own pid after a restart): without the
    lock it is not running the run, but only --force says so."""
    db = tmp_path / "j.db"
    make_run(db)
    forge(db, "UPDATE runs SET status = 'running', pid = 1")
    assert api.list_runs(db)[0].display_status == "stopped"
    line = assert_one_line_error(flipbench("run", "--resume", "r1", "--db", "j.db", cwd=tmp_path))
    assert "process 1" in line and "--force" in line
    assert server.counts.get("requests", 0) == 0
    proc = flipbench(
        "run", "--resume", "r1", "--force", "--no-progress", "--db", "j.db", cwd=tmp_path
    )
    assert_ok(proc)
    assert "taking over run r1 from process 1" in proc.stderr
    assert rows_per_condition(db, "r1") == {"p=30": [0, 1], "p=70": [0, 1]}
    assert api.list_runs(db)[0].display_status == "complete"


def test_force_never_takes_a_lock_that_is_held(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    make_run(db)
    holder = _hold(db, "r1")
    try:
        line = assert_one_line_error(
            flipbench("run", "--resume", "r1", "--force", "--db", "j.db", cwd=tmp_path)
        )
        assert f"pid {holder.pid}" in line and "--force cannot take over" in line
        with Journal(db, create=False) as journal:
            assert journal.get_run("r1").pid == holder.pid  # untouched by the refused resume
        line = assert_one_line_error(flipbench("run", "single-flip", "--force", cwd=tmp_path))
        assert "--force applies to --resume" in line
    finally:
        holder.kill()
        holder.wait()


def test_a_new_run_takes_the_lock_before_anything_is_written(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    config = RunConfig(experiment="single-flip", model=MODEL, p_values=P_VALUES, n=N, run_id="new")
    with RunLock(db, "new"), pytest.raises(FlipbenchError, match="being run by another process"):
        api.start_run(config, db)
    assert not db.exists()
    assert snapshot(tmp_path) == {}


# --- the journal file --------------------------------------------------------------------------
def test_a_journal_of_a_newer_schema_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    make_run(db)
    forge(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = snapshot(tmp_path)
    for create in (True, False):
        with pytest.raises(FlipbenchError, match=f"schema version 99.*{SCHEMA_VERSION}"):
            Journal(db, create=create)
    line = assert_one_line_error(flipbench("runs", "--db", "j.db", cwd=tmp_path))
    assert "99" in line
    with pytest.raises(FlipbenchError, match="schema version 99"):
        api.resume_run("r1", db)
    assert snapshot(tmp_path) == before


FOREIGN = {
    "runs-of-another-shape": "CREATE TABLE runs (id INTEGER PRIMARY KEY, title TEXT)",
    "unrelated-tables": "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')",
    "meta-without-version": "CREATE TABLE meta (key TEXT, value TEXT);"
    " INSERT INTO meta VALUES ('owner', 'someone else')",
}


@pytest.mark.parametrize("schema", list(FOREIGN.values()), ids=list(FOREIGN))
def test_a_foreign_sqlite_file_is_refused_and_left_byte_identical(
    tmp_path: Path, schema: str
) -> None:
    db = tmp_path / "theirs.db"
    with closing(sqlite3.connect(db)) as raw:
        raw.executescript(schema)
    before = snapshot(tmp_path)
    for create in (True, False):
        with pytest.raises(FlipbenchError, match=r"not a flipbench journal.*left untouched"):
            Journal(db, create=create)
    config = RunConfig(experiment="single-flip", model=MODEL, p_values=P_VALUES, n=N)
    with pytest.raises(FlipbenchError, match="not a flipbench journal"):
        api.start_run(config, db)
    assert snapshot(tmp_path) == before
    with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "samples" not in tables


def test_a_foreign_file_through_the_cli_is_one_error_line(tmp_path: Path) -> None:
    db = tmp_path / "theirs.db"
    with closing(sqlite3.connect(db)) as raw:
        raw.executescript(FOREIGN["runs-of-another-shape"])
    before = snapshot(tmp_path)
    line = assert_one_line_error(
        flipbench("run", "single-flip", "--model", MODEL, "--db", "theirs.db", cwd=tmp_path)
    )
    assert "not a flipbench journal" in line
    assert snapshot(tmp_path) == before


@pytest.fixture
def read_only(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A journal with a stopped run, then made read-only: the file (0444) or its folder (0555)."""
    home = tmp_path / "home"
    home.mkdir()
    db = home / "j.db"
    make_run(db)
    target = db if request.param == "file" else home
    mode = 0o444 if request.param == "file" else 0o555
    target.chmod(mode)
    try:
        yield db
    finally:
        target.chmod(0o755)


@pytest.mark.parametrize("read_only", ["file", "dir"], indirect=True)
def test_a_read_only_journal_can_be_read_but_not_written(read_only: Path, tmp_path: Path) -> None:
    db, home = read_only, read_only.parent
    before = snapshot(home)
    assert [r.run_id for r in api.list_runs(db)] == ["r1"]
    results = api.run_results("r1", db)
    assert [c.n_valid for c in results.conditions] == [1, 1]
    out = api.export("r1", "csv", tmp_path / "out" / "r1.csv", db)
    assert out.read_text().count("\n") == 3  # header and two samples
    listing = flipbench("runs", "--format", "json", "--db", str(db), cwd=tmp_path)
    assert_ok(listing)
    assert json.loads(listing.stdout)[0]["status"] == "interrupted"
    line = assert_one_line_error(flipbench("run", "--resume", "r1", "--db", str(db), cwd=tmp_path))
    assert "read-only" in line
    config = RunConfig(experiment="single-flip", model=MODEL, p_values=P_VALUES, n=N)
    with pytest.raises(FlipbenchError, match="read-only"):
        api.start_run(config, db)
    with pytest.raises(FlipbenchError, match="read-only"):
        Journal(db)
    assert snapshot(home) == before  # not even -wal/-shm files


def test_a_read_only_journal_with_a_pending_log_shows_every_row(tmp_path: Path) -> None:
    """Read-only is not `immutable` when the write-ahead log still holds rows: they are read too."""
    live = tmp_path / "live"
    live.mkdir()
    make_run(live / "j.db")
    with closing(sqlite3.connect(live / "j.db")) as raw:
        raw.execute("PRAGMA wal_autocheckpoint = 0")
        raw.execute("UPDATE runs SET message = 'from the log'")
        raw.commit()
        copy = tmp_path / "copy"
        copy.mkdir()
        for name in ("j.db", "j.db-wal"):  # as a crash would leave them
            (copy / name).write_bytes((live / name).read_bytes())
    (copy / "j.db").chmod(0o444)
    try:
        assert api.list_runs(copy / "j.db")[0].message == "from the log"
    finally:
        (copy / "j.db").chmod(0o644)


_CREATOR = """
import sys, time
from pathlib import Path
from flipbench.store import Journal, NoJournal, RunLock
db, run_id, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
while time.time() < start:
    pass
with RunLock(db, run_id):  # what start_run does before the run is created
    try:
        with Journal(db, create=False) as journal:
            journal.list_runs()
    except NoJournal:
        pass
    with Journal(db) as journal:
        journal.create_run(run_id=run_id, experiment="e", model="m", mode="sample", config={},
                           definition={}, definition_hash="h", versions={})
with Journal(db, create=False) as journal:
    print(len(journal.list_runs()))
"""


def test_many_processes_creating_one_new_journal_at_once(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    start = time.time() + 1.5  # all of them started and spinning by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, str(db), f"run-{i}", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(12)
    ]
    outcomes = [(p.communicate(timeout=60), p.returncode) for p in procs]
    for (out, err), code in outcomes:
        assert code == 0 and err == "", err
        assert int(out) >= 1
    assert sorted(r.run_id for r in api.list_runs(db)) == sorted(f"run-{i}" for i in range(12))
    with closing(sqlite3.connect(db)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
