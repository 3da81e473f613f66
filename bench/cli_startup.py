"""How fast the CLI answers: `--help`, `--version`, `runs` and `show ID` on a journal of 100 runs.

Builds a journal of `--runs` complete single-flip runs (21 conditions × `--n` samples, written
through the store's API, no model), then times each command as a fresh process (the best and
the median of `--repeat` tries) against `python -c pass` measured in the same run, so the ratio
says what flipbench adds on this machine whatever its load. Target: `runs` under 0.5 s.

    .venv/bin/python bench/cli_startup.py [--runs 100] [--n 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_journal import journal_of_runs

TARGET_RUNS_S = 0.5
FLIPBENCH = [sys.executable, "-c", "from flipbench.cli import main; main()"]


def timed(argv: list[str], repeat: int) -> tuple[float, float]:
    """Best and median wall time of `argv` as a fresh process; it must exit 0."""
    walls = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[3:])} failed: {done.stderr.strip()[:500]}")
    return min(walls), statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--n", type=int, default=100, help="samples per condition")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "journal.db"
        started = time.perf_counter()
        ids = journal_of_runs(db, args.runs, args.n)
        built = time.perf_counter() - started
        print(f"journal: {len(ids)} runs × 21 × {args.n} samples, built in {built:.1f} s")
        base = timed([sys.executable, "-c", "pass"], args.repeat)
        cases = {
            "--version": ["--version"],
            "--help": ["--help"],
            "runs": ["runs", "--db", str(db)],
            "show ID": ["show", ids[-1], "--db", str(db)],
        }
        print(f"{'command':<12}{'best s':>9}{'median s':>10}{'× python':>10}")
        print(f"{'python':<12}{base[0]:>9.3f}{base[1]:>10.3f}{1:>10.1f}")
        results = {}
        for name, argv in cases.items():
            results[name] = timed(FLIPBENCH + argv, args.repeat)
            best, median = results[name]
            print(f"{name:<12}{best:>9.3f}{median:>10.3f}{median / base[1]:>10.1f}")
    runs = results["runs"][1]
    verdict = "PASS" if runs < TARGET_RUNS_S else "FAIL"
    print(f"{verdict}: `flipbench runs` on {len(ids)} runs, median {runs:.3f} s"
          f" (target < {TARGET_RUNS_S} s)")  # fmt: skip


if __name__ == "__main__":
    main()
