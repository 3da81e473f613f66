"""Progress on long runs: a live bar with counts and ETA on a terminal, plain lines otherwise.

The ETA counts attempts, not only valid answers: the run ends when every condition has N valid
answers *or* has used its attempt cap, so the time left is the requests still expected — the
valid answers missing at the share of valid replies seen so far, never more than the attempts
still allowed — at the request rate seen so far. (An ETA from valid answers alone read 1:09:30
for a run of mostly invalid replies that hit its cap minutes later.)
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from flipbench.safety import mask_secrets, terminal_safe


class Reporter(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def update(self, done: int, requests: int, invalid: int, cost: float = 0.0) -> None: ...
    def stop(self) -> None: ...


class PlannedReporter(Reporter, Protocol):
    """A reporter told the attempt budget before the run, for an honest ETA."""

    def budget(self, attempts: int) -> None: ...


def eta_seconds(
    elapsed: float, requests: int, valid_gained: int, valid_left: int, attempts_left: int
) -> float | None:
    """Seconds left: the requests still expected (`valid_left` at the valid share seen so far,
    at most `attempts_left`) at the request rate seen so far; None before the first reply."""
    if requests <= 0 or elapsed <= 0:
        return None
    if valid_left <= 0:
        return 0.0
    share = valid_gained / requests
    expected = attempts_left if share <= 0 else min(attempts_left, valid_left / share)
    return max(0.0, expected) * elapsed / requests


def _clock(seconds: float | None) -> str:
    """`h:mm:ss`, or `-:--:--` while nothing is known."""
    if seconds is None:
        return "-:--:--"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class _Eta:
    """What a reporter needs for `eta_seconds`: the attempt budget and where the run began."""

    def __init__(self) -> None:
        self.attempts = 0  # 0: not told; the ETA then counts valid answers only
        self.total = self.start_done = 0
        self.t0 = time.monotonic()

    def begin(self, total: int, done: int) -> None:
        self.total, self.start_done, self.t0 = total, done, time.monotonic()

    def text(self, done: int, requests: int) -> str:
        attempts_left = self.attempts - requests if self.attempts else 1 << 62
        seconds = eta_seconds(
            time.monotonic() - self.t0, requests, done - self.start_done, self.total - done,
            max(0, attempts_left),
        )  # fmt: skip
        return _clock(seconds)


def note(text: str) -> None:
    """A one-line notice for a person (the plan of a paid run), on stderr beside progress;
    it may quote a server, so it is printed terminal-safe with credentials masked."""
    print(terminal_safe(mask_secrets(text)), file=sys.stderr, flush=True)


def _cost(cost: float) -> str:
    """Cost so far, shown only once something was paid (local runs cost nothing)."""
    return f"${cost:.4f}" if cost > 0 else ""


class SilentReporter:
    """For the Python API and tests: no output at all."""

    def budget(self, attempts: int) -> None:
        pass

    def start(self, total: int, done: int) -> None:
        pass

    def update(self, done: int, requests: int, invalid: int, cost: float = 0.0) -> None:
        pass

    def stop(self) -> None:
        pass


class LineReporter:
    """Non-terminal output (CI logs, pipes): one line at most every `every_s` seconds."""

    def __init__(self, label: str, every_s: float = 5.0) -> None:
        self.label, self.every_s = label, every_s
        self.total = self.done = self.requests = self.invalid = 0
        self.cost = 0.0
        self._last = 0.0
        self._t0 = time.monotonic()
        self._eta = _Eta()

    def budget(self, attempts: int) -> None:
        self._eta.attempts = attempts

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self._t0 = total, done, time.monotonic()
        self._eta.begin(total, done)
        self._print()

    def update(self, done: int, requests: int, invalid: int, cost: float = 0.0) -> None:
        self.done, self.requests, self.invalid, self.cost = done, requests, invalid, cost
        if time.monotonic() - self._last >= self.every_s:
            self._print()

    def stop(self) -> None:
        self._print()

    def _print(self) -> None:
        self._last = time.monotonic()
        elapsed = self._last - self._t0
        print(
            f"{self.label}: {self.done}/{self.total} valid, {self.requests} requests,"
            f" {self.invalid} invalid, {_cost(self.cost) or '$0'}, {elapsed:.0f}s,"
            f" ETA {self._eta.text(self.done, self.requests)}",
            file=sys.stderr,
            flush=True,
        )


class BarReporter:
    """A rich progress bar with counts and an ETA."""

    def __init__(self, label: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[requests]} requests, {task.fields[invalid]} invalid"),
            TextColumn("{task.fields[cost]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(
            label, total=1, requests=0, invalid=0, cost="", eta=_clock(None)
        )
        self._eta = _Eta()

    def budget(self, attempts: int) -> None:
        self._eta.attempts = attempts

    def start(self, total: int, done: int) -> None:
        self._eta.begin(total, done)
        self._progress.update(self._task, total=total, completed=done)
        self._progress.start()

    def update(self, done: int, requests: int, invalid: int, cost: float = 0.0) -> None:
        self._progress.update(
            self._task, completed=done, requests=requests, invalid=invalid, cost=_cost(cost),
            eta=self._eta.text(done, requests),
        )  # fmt: skip

    def stop(self) -> None:
        self._progress.stop()


def reporter_for(label: str, enabled: bool = True) -> PlannedReporter:
    """The right reporter for where stderr goes."""
    if not enabled:
        return SilentReporter()
    return BarReporter(label) if sys.stderr.isatty() else LineReporter(label)
