"""The *Failure to Mix* released data as it ships inside the package (MIT; no `../shared`)."""

from __future__ import annotations

from pathlib import Path

import flipbench

DATA = Path(flipbench.__file__).resolve().parent / "data" / "failure_to_mix"
