"""The journal: one SQLite file (WAL) holding every run and every request the moment it completes.

Each completed request is committed on its own, so a Ctrl-C or `kill -9` loses at most the
requests still in flight; `(run_id, condition, sample_index)` is unique, so a resume can never
record the same sample twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import socket
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.safety import storable

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
# Letters, digits, '.', '_', '-', starting with a letter or digit: never a path separator, never
# `.` or `..`. Matched with fullmatch, so a trailing newline is refused too.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Columns without which a `runs`/`samples` table is not flipbench's (a foreign file).
_CORE_COLUMNS = {
    "runs": {"run_id", "experiment", "model", "status", "config_json", "definition_json"},
    "samples": {"run_id", "condition", "sample_index", "status", "valid"},
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    config_json TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    message TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    condition TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER,
    request_json TEXT NOT NULL,
    response_json TEXT,
    content TEXT,
    finish_reason TEXT,
    answer TEXT,
    valid INTEGER NOT NULL,
    invalid_category TEXT,
    probs_json TEXT,
    coverage REAL,
    cost REAL,
    meta_json TEXT,
    latency_s REAL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, condition, sample_index)
);
CREATE INDEX IF NOT EXISTS samples_run ON samples (run_id, condition);
"""
# Paid calls are written here before they are sent and removed in the transaction that journals
# their reply; a row left behind by a process that died was paid for but never journaled, and
# counts against the run's budget (`Journal.spent`). Created on every writable open, so journals
# made before it existed get it too.
_IN_FLIGHT_SCHEMA = """
CREATE TABLE IF NOT EXISTS in_flight (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    condition TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    lost INTEGER NOT NULL DEFAULT 0,
    counted_cost REAL
)
"""


def now() -> str:
    """UTC timestamps in ISO form, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RunRow:
    """A run as stored: its resolved configuration and definition travel with it."""

    run_id: str
    experiment: str
    model: str
    mode: str
    status: str
    created_at: str
    updated_at: str
    config: dict[str, Any]
    definition: dict[str, Any]
    definition_hash: str
    versions: dict[str, Any]
    message: str | None
    pid: int | None = None
    locked: bool | None = None  # whether a process holds the run's lock (None: not looked at)

    @property
    def display_status(self) -> str:
        """`running` only while a process holds the run's lock; a killed run shows as `stopped`."""
        if self.status != "running":
            return self.status
        alive = pid_alive(self.pid) if self.locked is None else self.locked
        return "running" if alive else "stopped"


@dataclass
class SampleRecord:
    """One completed request: what was sent, what came back, and how it was read."""

    condition: str
    sample_index: int
    status: str
    request: dict[str, Any]
    response: Any
    valid: bool
    http_status: int | None = None
    content: str | None = None
    finish_reason: str | None = None
    answer: str | None = None
    invalid_category: str | None = None
    probs: dict[str, float] | None = None
    coverage: float | None = None
    cost: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    latency_s: float | None = None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_readable(path: Path) -> None:
    """Refuse a path that is not a journal before anything is written to it."""
    if path.is_dir():
        raise FlipbenchError(f"journal {path} is a directory, not a database file")
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise FlipbenchError(f"cannot read journal {path}: {exc.strerror}") from None
    if header and header != b"SQLite format 3\x00":
        raise FlipbenchError(f"journal {path} is not a flipbench (SQLite) database")


def validate_run_id(run_id: str, what: str = "run id") -> str:
    """Refuse an id that could not safely name a folder; every id that becomes a path passes here
    (a journal is data: a run id read from it is checked like one typed by a person)."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise FlipbenchError(
            f"{what} {run_id!r} must be letters, digits, '.', '_' or '-', starting with a letter"
            " or digit (≤ 100 chars)"
        )
    return run_id


def inside(base: Path, name: str) -> Path:
    """`base / name`, refused unless it resolves inside `base` (no `..`, no absolute path, no
    symlink pointing out)."""
    target = base / name
    if not target.resolve().is_relative_to(base.resolve()):
        raise FlipbenchError(f"refusing to write outside {base}: {name!r}")
    return target


def _writable(path: Path) -> bool:
    """Writable for us *and* meant to be: a file or folder without write bits counts as read-only
    even for root, who may write anything."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(stat.S_IMODE(mode) & 0o222)


def is_read_only(path: Path) -> bool:
    """A journal that must not (or cannot) be written: the file or its folder is read-only."""
    return (path.exists() and not _writable(path)) or not _writable(path.resolve().parent)


def check_writable(path: Path) -> None:
    """Writing commands refuse a read-only journal before they start anything."""
    if path.exists() and not _writable(path):
        raise FlipbenchError(
            f"journal {path} is read-only: `runs`, `show` and `export` can read it, but no run"
            " can be written to it (make it writable, or pass another --db)"
        )
    folder = path.resolve().parent
    if folder.is_dir() and not _writable(folder):
        raise FlipbenchError(
            f"directory {folder} is read-only: the journal {path.name} cannot be written there"
            " (reading it works; pass another --db to run)"
        )


class NoJournal(FlipbenchError):
    """A read found no journal (no file, an empty file, or one not yet given its tables)."""


class RunLocked(FlipbenchError):
    """Another live process holds the run's lock."""


def _host() -> str:
    return socket.gethostname()


class RunLock:
    """The run's lock: an OS lock (`flock`) on one file per run, held for the run's whole life.

    The kernel drops it the moment its holder dies (`kill -9`, a crash, a container stopped), so
    a lock is never stale and no pid has to be trusted: two processes can never hold it at once.
    The files live in a hidden folder beside the journal (`.<journal>.locks/<run id>.lock`) and
    hold the holder's pid and host, for messages. A clean release removes the file; a file left
    by a dead holder is simply locked again.
    """

    #: How long a busy lock is retried: only long enough to ride out a reader's momentary probe.
    BUSY_RETRY_S = 0.25

    def __init__(self, db: Path, run_id: str, *, force: bool = False) -> None:
        self.run_id = validate_run_id(run_id)
        self.dir = lock_dir(db)
        self.path = self.dir / f"{run_id}.lock"
        self.force = force
        self.previous: dict[str, Any] = {}  # the record a dead holder left behind, if any
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        busy_until = time.monotonic() + self.BUSY_RETRY_S
        give_up = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            fd = self._open()
            if fd is None:  # the folder was removed by a holder releasing: make it again
                if time.monotonic() > give_up:
                    raise FlipbenchError(f"could not take the lock {self.path}")
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_record(fd)
                os.close(fd)
                if time.monotonic() < busy_until:
                    time.sleep(0.01)
                    continue
                raise self._locked(holder) from None
            # The holder we waited for may have removed the file before we locked it: only the
            # file still at the path counts, so two processes can never both "hold" the lock.
            try:
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                os.close(fd)
                if time.monotonic() > give_up:
                    raise FlipbenchError(f"could not take the lock {self.path}")
                continue
            self.previous = _read_record(fd)
            record = {"pid": os.getpid(), "host": _host(), "since": now()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            self._fd = fd
            return self

    def _open(self) -> int | None:
        try:
            self.dir.mkdir(exist_ok=True)
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                return None
        except OSError as exc:
            raise FlipbenchError(
                f"cannot create the run lock {self.path}: {exc.strerror}"
            ) from None

    def _locked(self, holder: dict[str, Any]) -> RunLocked:
        pid = holder.get("pid", "unknown")
        where = f" on {holder['host']}" if holder.get("host") not in (None, _host()) else ""
        advice = (
            "--force cannot take over a run whose lock is held; stop that process first"
            if self.force
            else "wait for it to finish, or stop it, then resume"
        )
        return RunLocked(
            f"run {self.run_id} is being run by another process (pid {pid}{where}); {advice}"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still held: see the inode check in acquire
        os.close(self._fd)
        self._fd = None
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # only when empty; a process taking another lock re-creates it

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def check_takeover(self, run: RunRow) -> bool:
        """With the lock in hand: may this process continue `run`? True when taking over a run
        that was marked running by another process (the caller may say so).

        A run marked running whose recorded process is gone, or whose process left this lock's
        record behind (it held the lock, and the lock is free: it died), is simply continued.
        A recorded process that is alive but never held the lock (a reused pid, a container's pid
        1, a zombie, an older flipbench) needs --force: the lock, now ours, guarantees that no
        other flipbench runs it at the same time.
        """
        if run.status != "running" or not run.pid or run.pid == os.getpid():
            return False
        died = self.previous.get("pid") == run.pid and self.previous.get("host") == _host()
        if died or not pid_alive(run.pid):
            return True
        if self.force:
            return True
        raise FlipbenchError(
            f"run {run.run_id} is marked running by process {run.pid}, which is alive but does not"
            f" hold the run's lock (a reused pid, a container's pid 1, or an older flipbench); if"
            f" nothing else is running it, take it over with --resume {run.run_id} --force"
        )

    @staticmethod
    def held(db: Path, run_id: str) -> bool | None:
        """Whether some process holds the run's lock now (None: cannot tell). Probes with a
        shared lock for an instant, so it never blocks the holder and takes nothing."""
        try:
            fd = os.open(lock_dir(db) / f"{run_id}.lock", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        finally:
            os.close(fd)
        return False


def lock_dir(db: Path) -> Path:
    """The folder of a journal's run locks: hidden, beside the journal."""
    db = db.resolve()
    return db.parent / f".{db.name}.locks"


def _read_record(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Journal:
    """The run store; opened per command, safe to reopen after a crash."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        """`create=True` (writing commands): make the journal if missing; refuse a read-only one.
        `create=False` (reading commands): never create or write anything; a read-only journal
        (file or folder) is opened read-only. Either way a foreign SQLite file or a journal of a
        newer schema is refused before anything is written."""
        self.path = Path(path)
        check_readable(self.path)
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise NoJournal(f"no journal at {self.path} (run something first, or pass --db)")
        if create:
            check_writable(self.path)
        self.read_only = not create and is_read_only(self.path)
        try:
            if self.read_only:
                self._db = _connect_read_only(self.path)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except sqlite3.DatabaseError as exc:
            raise FlipbenchError(f"cannot use journal {self.path}: {exc}") from None
        try:
            self._db.row_factory = sqlite3.Row
            if create:
                self._prepare()
            elif not self._check_schema():
                raise NoJournal(f"no journal at {self.path} (run something first, or pass --db)")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise FlipbenchError(f"cannot use journal {self.path}: {_explain(exc, self)}") from None
        except BaseException:
            self._db.close()
            raise

    def _check_schema(self) -> bool:
        """True for a flipbench journal, False for an SQLite file with no tables yet; refuses a
        foreign database or a newer schema (reads only)."""
        names = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        tables = {r[0] for r in names} - {"sqlite_sequence"}
        if not tables:
            return False
        if "meta" not in tables:
            raise self._foreign(f"tables {', '.join(sorted(tables)[:5])} but no flipbench meta")
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError:
            row = None
        try:
            version = int(row[0]) if row is not None else None
        except (TypeError, ValueError):
            version = None
        if version is None:
            raise self._foreign("no flipbench schema_version")
        if version > SCHEMA_VERSION:
            raise FlipbenchError(
                f"journal {self.path} has schema version {version}, newer than this flipbench"
                f" reads (schema version {SCHEMA_VERSION}); upgrade flipbench to use it"
                " (nothing was written)"
            )
        for table, columns in _CORE_COLUMNS.items():
            found = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
            if not columns <= found:
                raise self._foreign(f"its {table!r} table is not flipbench's")
        return True

    def _foreign(self, why: str) -> FlipbenchError:
        return FlipbenchError(
            f"{self.path} is an SQLite database but not a flipbench journal ({why}); it was left"
            " untouched: pass another --db"
        )

    def _prepare(self) -> None:
        """Check or create the schema in one write transaction, so that many processes creating
        the same new journal at once all see it whole; only then switch a journal to WAL."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._check_schema():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self._db.execute(_IN_FLIGHT_SCHEMA)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        give_up = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:  # another process is opening it right now
                if "locked" not in str(exc) or time.monotonic() > give_up:
                    raise
                time.sleep(0.05)
        self._db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs -----------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        experiment: str,
        model: str,
        mode: str,
        config: dict[str, Any],
        definition: dict[str, Any],
        definition_hash: str,
        versions: dict[str, Any],
    ) -> None:
        validate_run_id(run_id)
        stamp = now()
        try:
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    run_id,
                    experiment,
                    model,
                    mode,
                    stamp,
                    stamp,
                    json.dumps(config, sort_keys=True),
                    json.dumps(definition, sort_keys=True),
                    definition_hash,
                    json.dumps(versions, sort_keys=True),
                    os.getpid(),
                ),
            )
        except sqlite3.IntegrityError:
            raise FlipbenchError(
                f"run {run_id!r} already exists; use --resume {run_id} to continue it"
            ) from None

    def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Record a status; `running` also records this process, so a crash is recognisable."""
        pid = os.getpid() if status == "running" else None
        self._db.execute(
            "UPDATE runs SET status = ?, message = ?, pid = ?, updated_at = ? WHERE run_id = ?",
            (status, message, pid, now(), run_id),
        )

    def set_mode(self, run_id: str, mode: str, config: dict[str, Any]) -> None:
        """Exact mode fell back to sampling (only when the user allowed it): record the change."""
        self._db.execute(
            "UPDATE runs SET mode = ?, config_json = ?, updated_at = ? WHERE run_id = ?",
            (mode, json.dumps(config, sort_keys=True), now(), run_id),
        )

    def update_versions(self, run_id: str, versions: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE runs SET versions_json = ?, updated_at = ? WHERE run_id = ?",
            (json.dumps(versions, sort_keys=True), now(), run_id),
        )

    def get_run(self, run_id: str) -> RunRow:
        validate_run_id(run_id)
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise FlipbenchError(f"no run {run_id!r} in {self.path} (see `flipbench runs`)")
        return self._run_row(row)

    def list_runs(self) -> list[RunRow]:
        """Every run, including any whose stored id is unusable (listed, never used as a path)."""
        rows = self._db.execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        return [self._run_row(r) for r in rows]

    def _run_row(self, row: sqlite3.Row) -> RunRow:
        run = _run_row(row)
        if run.status != "running":
            return run
        valid = isinstance(run.run_id, str) and _RUN_ID.fullmatch(run.run_id) is not None
        locked = RunLock.held(self.path, run.run_id) if valid else False
        return replace(run, locked=locked)

    # samples --------------------------------------------------------------------------------
    def record(self, run_id: str, s: SampleRecord) -> None:
        """Commit one completed request at once, so a crash cannot lose it; its in-flight
        mark (if any) goes in the same transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._insert(run_id, s)
            self._db.execute(
                "DELETE FROM in_flight WHERE run_id = ? AND condition = ? AND sample_index = ?"
                " AND lost = 0",
                (run_id, s.condition, s.sample_index),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _insert(self, run_id: str, s: SampleRecord) -> None:
        self._db.execute(
            "INSERT INTO samples (run_id, condition, sample_index, status, http_status,"
            " request_json, response_json, content, finish_reason, answer, valid,"
            " invalid_category, probs_json, coverage, cost, meta_json, latency_s, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                s.condition,
                s.sample_index,
                s.status,
                s.http_status,
                json.dumps(s.request),
                None if s.response is None else json.dumps(s.response),
                _text(s.content),
                _text(s.finish_reason),
                _text(s.answer),
                int(s.valid),
                _text(s.invalid_category),
                None if s.probs is None else json.dumps(s.probs),
                s.coverage,
                s.cost,
                json.dumps(s.meta) if s.meta else None,
                s.latency_s,
                now(),
            ),
        )

    def condition_counts(self, run_id: str) -> dict[str, tuple[int, int, int]]:
        """Per condition: (valid rows, all rows, next free sample index)."""
        rows = self._db.execute(
            "SELECT condition, SUM(valid), COUNT(*), MAX(sample_index) FROM samples"
            " WHERE run_id = ? GROUP BY condition",
            (run_id,),
        ).fetchall()
        return {r[0]: (int(r[1]), int(r[2]), int(r[3]) + 1) for r in rows}

    def samples(self, run_id: str) -> Iterator[sqlite3.Row]:
        """Every stored row of a run, in the order they were recorded."""
        yield from self._db.execute("SELECT * FROM samples WHERE run_id = ? ORDER BY id", (run_id,))

    # spend ----------------------------------------------------------------------------------
    def begin_call(self, run_id: str, condition: str, sample_index: int) -> None:
        """Mark a paid request as sent, just before it is sent (see `_IN_FLIGHT_SCHEMA`); one
        row per request, so a sample's retries and chained turns each count."""
        self._db.execute(
            "INSERT INTO in_flight (run_id, condition, sample_index, started_at)"
            " VALUES (?, ?, ?, ?)",
            (run_id, condition, sample_index, now()),
        )

    def mark_lost_calls(self, run_id: str) -> int:
        """Calls a dead process sent but never journaled: count each at the largest cost of
        one call in the run (conservative: it was paid, its price unknown). Only the holder of
        the run's lock may call this. Returns how many were found."""
        if not self._has_in_flight():
            return 0
        row = self._db.execute(
            "SELECT MAX(cost) FROM samples WHERE run_id = ? AND cost >= 0", (run_id,)
        ).fetchone()
        largest = row[0] if row and row[0] is not None and math.isfinite(row[0]) else 0.0
        cursor = self._db.execute(
            "UPDATE in_flight SET lost = 1, counted_cost = ? WHERE run_id = ? AND lost = 0",
            (largest, run_id),
        )
        return cursor.rowcount

    def lost_calls(self, run_id: str) -> tuple[int, float]:
        """Calls lost in flight when a process died, and the cost counted for them."""
        if not self._has_in_flight():
            return 0, 0.0
        row = self._db.execute(
            "SELECT COUNT(*), TOTAL(counted_cost) FROM in_flight WHERE run_id = ? AND lost = 1",
            (run_id,),
        ).fetchone()
        return int(row[0]), float(row[1])

    def spent(self, run_id: str) -> float:
        """USD the run has spent: every journaled cost plus the calls lost in flight (+inf when
        the sum overflows; negative or NaN stored costs count as nothing)."""
        costs = [
            r[0]
            for r in self._db.execute(
                "SELECT cost FROM samples WHERE run_id = ? AND cost IS NOT NULL", (run_id,)
            )
            if not math.isnan(r[0]) and r[0] > 0
        ]
        costs.append(self.lost_calls(run_id)[1])
        try:
            return math.fsum(costs)
        except OverflowError:
            return math.inf

    def _has_in_flight(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'in_flight'"
        ).fetchone()
        return row is not None


def _text(value: str | None) -> str | None:
    """What SQLite's UTF-8 accepts (lone surrogates escaped), whatever a backend passed on."""
    return None if value is None else storable(value)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that writes nothing, not even -wal/-shm files: `immutable` when
    there is no pending write-ahead log (the file alone is the whole journal)."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if pending else "&immutable=1")
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)


def _explain(exc: sqlite3.DatabaseError, journal: Journal) -> str:
    if journal.read_only and "unable to open" in str(exc):
        return (
            f"it is read-only and its write-ahead log ({journal.path.name}-wal) holds changes"
            " SQLite can only read with write access to its folder; make the folder writable, or"
            " copy the journal with its -wal file elsewhere"
        )
    return str(exc)


def _run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        run_id=row["run_id"],
        experiment=row["experiment"],
        model=row["model"],
        mode=row["mode"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        config=json.loads(row["config_json"]),
        definition=json.loads(row["definition_json"]),
        definition_hash=row["definition_hash"],
        versions=json.loads(row["versions_json"]),
        message=row["message"],
        pid=row["pid"],
    )
