"""Importers of other people's released data into the journal, as ordinary runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from flipbench.importers.base import ImportReport, RunImport
from flipbench.importers.failure_to_mix import import_failure_to_mix


@contextlib.contextmanager
def paper_data() -> Iterator[Path]:
    """The folder of the *Failure to Mix* released CSVs that ships with flipbench (MIT, its
    LICENSE beside them), so that `flipbench import failure-to-mix` works on any install."""
    with resources.as_file(resources.files("flipbench") / "data" / "failure_to_mix") as path:
        yield path


__all__ = ["ImportReport", "RunImport", "import_failure_to_mix", "paper_data"]
