"""Opening the journal's SQLite file: the one place that decides whether a file may be used.

Split from `store` so that opening, refusing and preparing a journal (schema, WAL, pragmas) sit
apart from what is read and written once it is open (`journal_runs`, `journal_samples`). A file
that is not a flipbench journal, or is of a newer schema, is refused before a byte is written; a
read-only journal is read without writing anything, not even -wal/-shm files.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from flipbench.errors import FlipbenchError
from flipbench.journal_checks import NoJournal, check_readable, check_writable, is_read_only
from flipbench.journal_schema import (
    CORE_COLUMNS,
    IN_FLIGHT_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    SUMMARIES_SCHEMA,
)
from flipbench.runlock import BUSY_TIMEOUT_S


def now() -> str:
    """UTC timestamps in ISO form, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JournalFile:
    """An open journal connection; the tables' operations build on it (see `store.Journal`)."""

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
            # Text another tool wrote as invalid UTF-8 is read with replacement characters
            # rather than making every read of the run raise.
            self._db.text_factory = _decode
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
        for table, columns in CORE_COLUMNS.items():
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
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self._db.execute(IN_FLIGHT_SCHEMA)
            self._db.execute(SUMMARIES_SCHEMA)
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that writes nothing, not even -wal/-shm files: `immutable` when
    there is no pending write-ahead log (the file alone is the whole journal)."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if pending else "&immutable=1")
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)


def _explain(exc: sqlite3.DatabaseError, journal: JournalFile) -> str:
    if journal.read_only and "unable to open" in str(exc):
        return (
            f"it is read-only and its write-ahead log ({journal.path.name}-wal) holds changes"
            " SQLite can only read with write access to its folder; make the folder writable, or"
            " copy the journal with its -wal file elsewhere"
        )
    return str(exc)
