"""The journal: one SQLite file (WAL) holding every run and every request the moment it completes.

Each completed request is committed on its own, so a Ctrl-C or `kill -9` loses at most the
requests still in flight; `(run_id, condition, sample_index)` is unique, so a resume can never
record the same sample twice. A run being executed holds an OS lock (`RunLock`) for its whole life,
so no two processes can run it at once. The journal refuses files that are not its own (a foreign
SQLite file, a newer schema) before writing anything, and is read without writing a byte when it
is read-only.

`Journal` is what the rest of flipbench imports; its parts live in modules of their own so that
each stays small: opening the file (`journal_file`), the `runs` table (`journal_runs`) and the
per-request `samples` and `in_flight` tables (`journal_samples`), and the remembered
per-run S that lets `runs` list at once (`journal_summaries`). The names callers need are
re-exported here, so `flipbench.store` stays the one door to the journal.
"""

from __future__ import annotations

from flipbench.journal_checks import (
    NoJournal,
    check_readable,
    check_writable,
    inside,
    validate_run_id,
)
from flipbench.journal_runs import RunRow, RunTable
from flipbench.journal_samples import SampleRecord, SampleTable
from flipbench.journal_schema import SCHEMA_VERSION
from flipbench.journal_summaries import SummaryTable
from flipbench.runlock import RunLock, RunLocked, lock_dir, pid_alive

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "NoJournal",
    "RunLock",
    "RunLocked",
    "RunRow",
    "SampleRecord",
    "check_readable",
    "check_writable",
    "inside",
    "lock_dir",
    "pid_alive",
    "validate_run_id",
]


class Journal(RunTable, SampleTable, SummaryTable):
    """The run store; opened per command, safe to reopen after a crash."""
