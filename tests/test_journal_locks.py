"""A long-lived process keeps journal connections open while it opens others (a matrix or a
sweep runs run after run); a reader in another process (`flipbench runs`, `show`) must never
break them. Reading the journal's header with a plain open()/close() used to drop the writer's
POSIX locks on the file, so a reader closing elsewhere took itself for the last connection,
checkpointed and deleted the write-ahead log, and the writer's next statement failed with
"disk I/O error" (measured: a matrix polled by a reader failed within its first cells; it
now completes)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from flipbench.store import Journal

ROOT = Path(__file__).resolve().parents[1]
MATRIX = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from flipbench import providers
providers._REGISTRY["planted"] = "tests.matrix_backends:PlantedBackend"
from flipbench.config import RunConfig
from flipbench.matrix import api
from flipbench.matrix.cells import MatrixOptions
options = MatrixOptions(experiments=["single-flip"], interventions=["system-persona"],
                        models=["planted/argmax", "planted/sampler"], run=RunConfig(n=20))
print(api.start_matrix(options, Path(sys.argv[1])).status)
"""


def test_a_reader_elsewhere_never_breaks_a_matrix_that_keeps_its_connections(
    tmp_path: Path,
) -> None:
    db = tmp_path / "j.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", MATRIX, str(db)], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    reads = 0
    deadline = time.monotonic() + 120
    while writer.poll() is None and time.monotonic() < deadline:
        if db.exists() and db.stat().st_size > 0:
            with Journal(db, create=False) as journal:  # what `flipbench runs` does
                for run in journal.list_runs():
                    journal.condition_counts(run.run_id)
            reads += 1
        time.sleep(0.02)
    output = writer.communicate(timeout=60)[0]
    assert writer.returncode == 0, output
    assert output.strip().endswith("complete") and reads > 0, (reads, output)
