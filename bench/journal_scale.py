"""A million-sample journal: write time per sample, `show` and `export --format parquet` on it,
and the journal's size per million samples, each against a target (PASS/FAIL).

One single-flip run of 21 conditions × `--n` samples (default: 47,620 each, 1,000,020 in all)
is written through `Journal.record` — the runner's path, one transaction per sample — with rows
shaped like a constrained run on the embedded model (`synthetic_journal`). `show` and `export`
then run as the user runs them, each a fresh `flipbench` process; peak memory is the largest
resident size any of them reached (so far, in this order).

Targets were set from what this bench measured on the project's 2-core machine, with ~2×
headroom for its noise (the numbers are beside them): a regression of about 2× fails. The
targets hold for the default million samples (fewer samples pass trivially).

    .venv/bin/python bench/journal_scale.py [--n 47620] [--dir DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_journal import single_flip, write_run

from flipbench.store import Journal

# Measured on the project's 2-core machine, nothing else running (2026-11-30): 160 µs per
# sample, `show` 7.7 s (140 MB), export 18.3 s (1.3 GB peak, 12.7 MB of Parquet), 1.42 GB per
# million samples; with two test processes beside it 232 µs, 26.5 s and 59.2 s. The targets
# leave ~2× for noise; the size target is tight (it does not depend on load).
#: µs per sample journaled (one transaction each).
TARGET_WRITE_US = 400.0
#: `show` on a million samples, seconds.
TARGET_SHOW_S = 15.0
#: `export --format parquet` of a million samples, seconds.
TARGET_EXPORT_S = 40.0
#: Journal bytes per million samples (the request and reply of every sample are kept whole,
#: by design; the Parquet export is ~100× smaller).
TARGET_GB_PER_MILLION = 1.6

FLIPBENCH = [sys.executable, "-c", "from flipbench.cli import main; main()"]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(FLIPBENCH + argv, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"flipbench {' '.join(argv)} failed: {done.stderr.strip()[:500]}")
    return wall


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def verdict(name: str, value: float, target: float, unit: str) -> bool:
    ok = value <= target
    print(f"{'PASS' if ok else 'FAIL'}: {name} {value:,.1f} {unit} (target ≤ {target:,.1f})")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=47_620, help="samples per condition (× 21)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "journal.db"
        started = time.perf_counter()
        with Journal(db) as journal:
            count = write_run(journal, "scale", single_flip(args.n))
        write_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(tmp).glob("journal.db*"))
        per_sample_us = write_s / count * 1e6
        print(f"wrote {count:,} samples in {write_s:.1f} s: {per_sample_us:.0f} µs per sample,"
              f" journal {size / 1e9:.2f} GB")  # fmt: skip
        show_s = timed(["show", "scale", "--db", str(db)])
        print(f"show: {show_s:.1f} s, peak {peak_mb():,.0f} MB")
        parquet = Path(tmp) / "scale.parquet"
        export_s = timed(["export", "scale", "--format", "parquet", "-o", str(parquet), "--db",
                          str(db)])  # fmt: skip
        print(f"export parquet: {export_s:.1f} s, peak {peak_mb():,.0f} MB,"
              f" {parquet.stat().st_size / 1e6:.1f} MB")  # fmt: skip
    per_million = size / count * 1e6 / 1e9
    results = [
        verdict("write", per_sample_us, TARGET_WRITE_US, "µs/sample"),
        verdict(f"show on {count:,} samples", show_s, TARGET_SHOW_S, "s"),
        verdict(f"export parquet of {count:,} samples", export_s, TARGET_EXPORT_S, "s"),
        verdict("journal size per million samples", per_million, TARGET_GB_PER_MILLION, "GB"),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
