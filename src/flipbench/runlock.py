"""The run lock: no two processes ever execute the same run at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flipbench.errors import FlipbenchError
from flipbench.journal_checks import validate_run_id

if TYPE_CHECKING:
    from flipbench.store import RunRow

#: How long a lock (or a busy journal) is waited for before giving up.
BUSY_TIMEOUT_S = 30.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
            record = {"pid": os.getpid(), "host": _host(), "since": _now()}
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
        """With the lock in hand: may this process continue `run`? True when it takes the run
        over from a live process with --force (the caller says so); False when it simply
        continues (no other process, or one that died).

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
            return False
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
