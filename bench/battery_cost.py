"""Calls and wall time of the full 100-point benchmark on the embedded model: exact vs sampled.

`--mode exact` reads next-token probabilities wherever the answer is one token of a known set
(single flip, ternary, the games' first answer token, word pairs: one request per condition);
only Exp2 (two flips in one reply) is still sampled. `--mode sample` draws N valid replies per
condition everywhere (grammar-constrained, as the benchmark does on a local model). Both run in
this process one after the other on the same machine; compare the ratio, not the seconds.

    .venv/bin/python bench/battery_cost.py [--n 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from flipbench.benchmark import run_benchmark


def timed(mode: str, n: int | None, db: Path) -> tuple[float, int, float | None]:
    started = time.perf_counter()
    outcome = run_benchmark("local/smollm2", db, mode=mode, n=n)
    wall = time.perf_counter() - started
    calls = sum(c.n_total for run in outcome.summary.runs for c in run.conditions)
    return wall, calls, outcome.summary.total.score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="valid samples per condition")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exact = timed("exact", args.n, Path(tmp) / "exact.db")
        sampled = timed("sample", args.n, Path(tmp) / "sample.db")
    print(f"{'mode':<10}{'calls':>8}{'wall s':>9}{'total score':>13}")
    for name, (wall, calls, total) in (("exact", exact), ("sampled", sampled)):
        score = "n/a" if total is None else f"{total:.1f}"
        print(f"{name:<10}{calls:>8}{wall:>9.1f}{score:>13}")
    calls, wall = sampled[1] / exact[1], sampled[0] / exact[0]
    print(f"sampled / exact: {calls:.1f}x the calls, {wall:.1f}x the time")


if __name__ == "__main__":
    main()
