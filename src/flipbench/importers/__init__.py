"""Importers of other people's released data into the journal, as ordinary runs."""

from __future__ import annotations

from flipbench.importers.base import ImportReport, RunImport
from flipbench.importers.failure_to_mix import import_failure_to_mix

__all__ = ["ImportReport", "RunImport", "import_failure_to_mix"]
