"""Progress on long runs: a live bar with counts and ETA on a terminal, plain lines otherwise."""

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
    TimeRemainingColumn,
)

from flipbench.safety import mask_secrets, terminal_safe


class Reporter(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def update(self, done: int, requests: int, invalid: int, cost: float = 0.0) -> None: ...
    def stop(self) -> None: ...


def note(text: str) -> None:
    """A one-line notice for a person (the plan of a paid run), on stderr beside progress;
    it may quote a server, so it is printed terminal-safe with credentials masked."""
    print(terminal_safe(mask_secrets(text)), file=sys.stderr, flush=True)


def _cost(cost: float) -> str:
    """Cost so far, shown only once something was paid (local runs cost nothing)."""
    return f"${cost:.4f}" if cost > 0 else ""


class SilentReporter:
    """For the Python API and tests: no output at all."""

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

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self._t0 = total, done, time.monotonic()
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
            f" {self.invalid} invalid, {_cost(self.cost) or '$0'}, {elapsed:.0f}s",
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
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(label, total=1, requests=0, invalid=0, cost="")

    def start(self, total: int, done: int) -> None:
        self._progress.update(self._task, total=total, completed=done)
        self._progress.start()

    def update(self, done: int, requests: int, invalid: int, cost: float = 0.0) -> None:
        self._progress.update(
            self._task, completed=done, requests=requests, invalid=invalid, cost=_cost(cost)
        )

    def stop(self) -> None:
        self._progress.stop()


def reporter_for(label: str, enabled: bool = True) -> Reporter:
    """The right reporter for where stderr goes."""
    if not enabled:
        return SilentReporter()
    return BarReporter(label) if sys.stderr.isatty() else LineReporter(label)
