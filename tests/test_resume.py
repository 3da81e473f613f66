"""Crash and resume on the real embedded model: a process really dies, and a resume tops it up.

Each test starts the `flipbench` CLI as a child process on `local/smollm2` (constrained, so every
reply is "0" or "1"), watches the SQLite journal from outside through a read-only connection,
and stops the child with a real signal once some samples are journaled: SIGKILL (`kill -9`, no
cleanup at all) or SIGINT (Ctrl-C, the run records itself as interrupted). Then
`flipbench run --resume` must bring every condition to exactly N valid samples without touching
or duplicating what was already journaled.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

FLIPBENCH = Path(sys.executable).parent / "flipbench"
N = 300  # several rounds a condition even with 64 completions in flight (16 a request)
GRID = "zoom"
CONDITIONS = ("p=45", "p=49", "p=50", "p=51", "p=55")
TOTAL = N * len(CONDITIONS)
# Stop the first process once this many samples are journaled: one and a half conditions
# (conditions fill in order), so the stop leaves one full, one partly filled and three empty;
# far from the TOTAL a finished run would have.
KILL_AT = N + N // 2
START_TIMEOUT_S = 180  # model load plus the first KILL_AT samples, on a slow or busy machine
RUN_TIMEOUT_S = 420  # a whole resume (at most TOTAL samples)
EXIT_TIMEOUT_S = 30  # Ctrl-C to process exit

Row = tuple[tuple[str, Any], ...]


def _cli(*args: str) -> list[str]:
    return [str(FLIPBENCH), *args]


def _run_command(run_id: str, db: Path, n: int) -> list[str]:
    options = f"--model local/smollm2 --constrained --n {n} --grid {GRID} --run-id {run_id}"
    return _cli("run", "single-flip", *options.split(), "--db", str(db), "--no-progress")


def _start(tmp_path: Path, db: Path, run_id: str, log: str) -> subprocess.Popen[bytes]:
    """The first, to-be-stopped run, as a child process whose output goes to files."""
    command = _run_command(run_id, db, N)
    with (tmp_path / f"{log}.out").open("wb") as out, (tmp_path / f"{log}.err").open("wb") as err:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=tmp_path
        )


def _logs(tmp_path: Path, log: str) -> str:
    parts = []
    for suffix in ("out", "err"):
        path = tmp_path / f"{log}.{suffix}"
        text = path.read_text(errors="replace") if path.exists() else ""
        parts.append(f"--- std{suffix} ---\n{text[-3000:]}")
    return "\n".join(parts)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Never leave a child behind, whatever a test did."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=EXIT_TIMEOUT_S)


def _connect(db: Path, timeout_s: float = 5.0) -> sqlite3.Connection:
    """A read-only view of the journal: the test must not write, lock or repair anything."""
    return sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=timeout_s)


def _count(db: Path, run_id: str) -> int:
    """Journaled samples of a run; 0 while the journal or its tables do not exist yet."""
    if not db.exists():
        return 0
    try:
        # A short busy timeout: a poll that waited seconds on a lock once let the whole run
        # finish before the stop was sent (it is polled again 20 ms later instead).
        with closing(_connect(db, timeout_s=0.2)) as conn:
            query = "SELECT COUNT(*) FROM samples WHERE run_id = ?"
            return int(conn.execute(query, (run_id,)).fetchone()[0])
    except sqlite3.OperationalError:  # being created: no such table, unable to open, locked
        return 0


def _wait_for_rows(
    proc: subprocess.Popen[bytes], db: Path, run_id: str, tmp_path: Path, log: str
) -> int:
    """Poll until KILL_AT samples are journaled; fail loudly if the run ends or stalls first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        count = _count(db, run_id)
        if count >= KILL_AT:
            return count
        if proc.poll() is not None:
            pytest.fail(
                f"the run exited (code {proc.returncode}) with {count} samples journaled,"
                f" before it could be stopped\n{_logs(tmp_path, log)}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"only {count} samples journaled after {START_TIMEOUT_S}s\n{_logs(tmp_path, log)}"
            )
        time.sleep(0.02)


def _rows(db: Path, run_id: str) -> dict[int, Row]:
    """Every sample row of a run, all columns, each value with its SQLite-returned type."""
    with closing(_connect(db)) as conn:
        cursor = conn.execute("SELECT * FROM samples WHERE run_id = ? ORDER BY id", (run_id,))
        names = [d[0] for d in cursor.description]
        rows = {}
        for values in cursor:
            row = tuple((f"{k}:{type(v).__name__}", v) for k, v in zip(names, values, strict=True))
            rows[_column(row, "id")] = row
        return rows


def _column(row: Row, name: str) -> Any:
    for key, value in row:
        if key.partition(":")[0] == name:
            return value
    raise KeyError(name)


def _run_row(db: Path, run_id: str) -> dict[str, Any]:
    with closing(_connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert row is not None, f"no run {run_id!r} in the journal"
    return dict(row)


def _complete(tmp_path: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a CLI command to the end (bounded by RUN_TIMEOUT_S), output captured."""
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _resume(tmp_path: Path, db: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    done = _complete(tmp_path, _cli("run", "--resume", run_id, "--db", str(db), "--no-progress"))
    assert done.returncode == 0, f"resume failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _valid_per_condition(rows: dict[int, Row]) -> dict[str, int]:
    counts = dict.fromkeys(CONDITIONS, 0)
    for row in rows.values():
        counts[_column(row, "condition")] += int(_column(row, "valid"))
    return counts


def _indices(rows: dict[int, Row]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {c: [] for c in CONDITIONS}
    for row in rows.values():
        found[_column(row, "condition")].append(_column(row, "sample_index"))
    return found


def _assert_stopped_early(before: dict[int, Row]) -> None:
    valid = sum(_valid_per_condition(before).values())
    assert valid < TOTAL, (
        f"the run reached all {TOTAL} valid samples before it was stopped, so this test proves"
        f" nothing about resuming; raise N (now {N}) or lower KILL_AT (now {KILL_AT})"
    )
    assert len(before) >= KILL_AT
    partial = {c: v for c, v in _valid_per_condition(before).items() if 0 < v < N}
    assert partial, f"no condition was stopped part-way: {_valid_per_condition(before)}"


def _assert_topped_up(tmp_path: Path, db: Path, run_id: str, before: dict[int, Row]) -> None:
    """The resumed run: exactly N valid per condition, old rows untouched, indices never reused."""
    after = _rows(db, run_id)

    # Every row journaled before the stop is still there, identical in every column.
    missing = sorted(set(before) - set(after))
    assert not missing, f"rows journaled before the stop disappeared: ids {missing[:10]}"
    changed = [i for i in before if after[i] != before[i]]
    assert not changed, f"rows journaled before the stop changed: {before[changed[0]]} → " + str(
        after[changed[0]]
    )

    # The resume really continued, appending new rows only.
    new = {i: row for i, row in after.items() if i not in before}
    assert new, "the resume journaled nothing"
    assert min(new) > max(before), "the resume inserted rows among the old ones"

    # Exactly N valid samples per condition.
    assert _valid_per_condition(after) == dict.fromkeys(CONDITIONS, N)

    # No (condition, sample_index) twice, in the whole run.
    keys = [(_column(r, "condition"), _column(r, "sample_index")) for r in after.values()]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"duplicate (condition, sample_index): {duplicates[:10]}"
    with closing(_connect(db)) as conn:
        grouped = conn.execute(
            "SELECT run_id, condition, sample_index, COUNT(*) FROM samples"
            " GROUP BY run_id, condition, sample_index HAVING COUNT(*) > 1"
        ).fetchall()
    assert grouped == []

    # Indices: the resume starts after the highest journaled index of each condition, so it
    # never reuses one; it runs to the end, so its own indices are contiguous. Gaps below the
    # old maximum can only be samples that were in flight when the process was stopped: at most
    # one per llama.cpp slot (--max-concurrency requests × completions per request, recorded
    # with the run as `slots`).
    in_flight = int(json.loads(_run_row(db, run_id)["versions_json"])["model"]["slots"])
    old, fresh = _indices(before), _indices(new)
    gaps = 0
    for cond in CONDITIONS:
        everything = sorted(old[cond] + fresh[cond])
        assert everything[0] >= 0
        assert len(set(everything)) == len(everything)
        start = max(old[cond], default=-1) + 1
        assert sorted(fresh[cond]) == list(range(start, start + len(fresh[cond]))), (
            f"{cond}: resumed indices {sorted(fresh[cond])} do not continue after {start - 1}"
        )
        gaps += len(set(range(everything[-1] + 1)) - set(everything))
    assert gaps <= in_flight, (
        f"{gaps} sample indices skipped; at most {in_flight} samples were in flight"
    )

    assert _run_row(db, run_id)["status"] == "complete"

    shown = subprocess.run(
        _cli("show", run_id, "--db", str(db), "--format", "json"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["status"] == "complete"
    assert {c["condition"]: c["n_valid"] for c in report["conditions"]} == dict.fromkeys(
        CONDITIONS, N
    )


def _start_then_signal(tmp_path: Path, db: Path, run_id: str, signum: int) -> int:
    """Start a run, let it journal some rows, send `signum`, and return its exit code."""
    proc = _start(tmp_path, db, run_id, "first")
    try:
        count = _wait_for_rows(proc, db, run_id, tmp_path, "first")
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended (code {proc.returncode}) before signal {signum} could be sent"
                f" ({count} samples seen); raise N (now {N})\n{_logs(tmp_path, 'first')}"
            )
        os.kill(proc.pid, signum)
        try:
            proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not exit within {EXIT_TIMEOUT_S}s of signal {signum}")
    finally:
        _stop(proc)
    return proc.returncode


@pytest.mark.slow
def test_kill_9_then_resume_tops_up_exactly(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    returncode = _start_then_signal(tmp_path, db, "killme", signal.SIGKILL)
    assert returncode == -signal.SIGKILL, (
        f"the run was not killed by SIGKILL (exit code {returncode}); it probably finished"
        f" first\n{_logs(tmp_path, 'first')}"
    )

    before = _rows(db, "killme")
    _assert_stopped_early(before)
    # Nothing could record the kill: the stored status still says running, but its process is
    # gone, so `runs` reports it as stopped.
    assert _run_row(db, "killme")["status"] == "running"
    listing = subprocess.run(
        _cli("runs", "--format", "json", "--db", str(db)),
        capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert [r["status"] for r in json.loads(listing.stdout)] == ["stopped"]

    _resume(tmp_path, db, "killme")
    _assert_topped_up(tmp_path, db, "killme", before)


@pytest.mark.slow
def test_resume_of_complete_run_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    first = _complete(tmp_path, _run_command("small", db, 3))
    assert first.returncode == 0, first.stderr
    before, run_before = _rows(db, "small"), _run_row(db, "small")
    assert run_before["status"] == "complete"
    assert _valid_per_condition(before) == dict.fromkeys(CONDITIONS, 3)

    _resume(tmp_path, db, "small")

    assert _rows(db, "small") == before
    assert _run_row(db, "small") == run_before


@pytest.mark.slow
def test_ctrl_c_marks_interrupted_then_resume_tops_up(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    returncode = _start_then_signal(tmp_path, db, "ctrlc", signal.SIGINT)
    assert returncode == 130, (
        f"exit code {returncode} after Ctrl-C, not 130\n{_logs(tmp_path, 'first')}"
    )

    before = _rows(db, "ctrlc")
    _assert_stopped_early(before)
    run = _run_row(db, "ctrlc")
    assert run["status"] == "interrupted", f"{run['status']=}\n{_logs(tmp_path, 'first')}"
    assert "--resume ctrlc" in (run["message"] or "")

    _resume(tmp_path, db, "ctrlc")
    _assert_topped_up(tmp_path, db, "ctrlc", before)
