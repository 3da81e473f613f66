"""Checks on the paths a journal gives or is given, before anything is read or written there.

A journal is data: a run id read from it is checked like one typed by a person before it becomes
a folder name, and a file that is not a journal, or must not be written, is refused first.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from pathlib import Path

from flipbench.errors import FlipbenchError

# Letters, digits, '.', '_', '-', starting with a letter or digit: never a path separator, never
# `.` or `..`. Matched with fullmatch, so a trailing newline is refused too.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class NoJournal(FlipbenchError):
    """A read found no journal (no file, an empty file, or one not yet given its tables)."""


def check_readable(path: Path) -> None:
    """Refuse a path that is not a journal before anything is written to it."""
    if path.is_dir():
        raise FlipbenchError(f"journal {path} is a directory, not a database file")
    if not path.exists():
        return
    # The header is read by SQLite, not with open(): closing a plain file descriptor drops every
    # POSIX lock this process holds on the file, including those of the SQLite connections a
    # long-lived process (a sweep, a matrix) keeps open; another process could then checkpoint
    # and delete the write-ahead log under them (measured: "disk I/O error" in the writer).
    # SQLite defers closing its own descriptors while another connection holds locks.
    try:
        # immutable: no lock taken, no -wal/-shm file made (a reading command writes nothing);
        # only the file's header is read, which the write-ahead log never changes
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise FlipbenchError(f"cannot read journal {path}: {exc}") from None
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise FlipbenchError(f"journal {path} is not a flipbench (SQLite) database") from None
    finally:
        conn.close()


def is_valid_run_id(run_id: object) -> bool:
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def validate_run_id(run_id: str, what: str = "run id") -> str:
    """Refuse an id that could not safely name a folder; every id that becomes a path passes here
    (a journal is data: a run id read from it is checked like one typed by a person)."""
    if not is_valid_run_id(run_id):
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
