"""Wall time of one default-grid single-flip curve on the embedded model: exact vs sampled.

Exact mode reads whole answers per p (a fresh prompt, ~8 cached steps and ~2 whole-vocabulary
lists for the stop mass; each a request), or with --first-token the first token's distribution
once per p (21 requests); sampled mode draws
N = 100 valid replies per p (2,100 requests). Sampled replies use --constrained: SmolLM2 puts only
~2 % of its next-token mass on "0"/"1", so unconstrained it would need ~50 requests per valid
sample. Both run in this process, one after the other, on the same machine, and the ratio is
what to compare across machines (absolute times are noisy on shared 2-core machines).

    .venv/bin/python bench/exact_vs_sample.py [--n 100] [--grid default]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from flipbench.api import start_run
from flipbench.config import RunConfig


def timed(config: RunConfig, db: Path) -> tuple[float, int, float]:
    started = time.perf_counter()
    outcome = start_run(config, db)
    elapsed = time.perf_counter() - started
    assert outcome.results is not None and outcome.status == "complete", outcome.message
    return elapsed, outcome.results.n_requests, outcome.results.s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--grid", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        exact = timed(RunConfig(mode="exact", grid=args.grid), db)
        first = timed(RunConfig(mode="exact", first_token=True, grid=args.grid), db)
        sampled = timed(RunConfig(mode="sample", constrained=True, n=args.n, grid=args.grid), db)
    print(f"{'mode':<28}{'wall s':>9}{'requests':>10}{'req/s':>8}{'S':>8}")
    for name, (wall, requests, s) in (
        ("exact (whole answers)", exact),
        ("exact (--first-token)", first),
        (f"sampled (constrained, N={args.n})", sampled),
    ):
        print(f"{name:<28}{wall:>9.1f}{requests:>10}{requests / wall:>8.1f}{s:>8.3f}")
    print(f"whole answers / first token wall-time ratio: {exact[0] / first[0]:.1f}x")
    print(f"sampled / exact wall-time ratio: {sampled[0] / exact[0]:.1f}x")


if __name__ == "__main__":
    main()
