"""Wall time of `flipbench bench --model local/smollm2` (the 100-point benchmark), part by part.

Runs the benchmark as its acceptance asks (`--mode auto`: exact where the answer is a known set
— single flip, ternary, word pairs, read as whole answers — sampled for Exp2 and the games), then
prints each run's calls and wall time (first to last journaled sample, and the run's own span)
and the total against the 60 s target of issue 12. `--compare-sample` also runs `--mode sample`
(everything sampled, grammar-constrained as the benchmark does locally) in the same process, so
the ratio between the two is measured on the same machine at the same load.

`--compare-old-shape` also runs it with the sampled requests shaped as before issue 12 (one
completion a request, the answers always enforced by a grammar, slots of 2,048 tokens; exact
readings as today) and prints the ratio: what the request shape alone changed.

`--plan` runs nothing: it prints each part's plan at the given settings (calls, and the time
range from the rates the run's own plan line uses, `plan.LOCAL_RATES`) — how far the default
benchmark is from the target before an hour is spent finding out.

    .venv/bin/python bench/battery_cost.py [--n 100] [--game-n N] [--game-max-tokens T]
                                           [--compare-sample] [--compare-old-shape] [--plan]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import datetime
from pathlib import Path

from flipbench.api import check_run
from flipbench.benchmark import PART_RUNS, part_mode, run_benchmark
from flipbench.config import RunConfig
from flipbench.plan import duration
from flipbench.session import local_run_seconds

TARGET_S = 60.0


def _spans(db: Path) -> list[tuple[str, int, float]]:
    """(run id, samples, seconds from the run's creation to its last update) per run."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT r.run_id, r.created_at, r.updated_at, COUNT(s.id) FROM runs r"
            " LEFT JOIN samples s USING (run_id) GROUP BY r.run_id ORDER BY r.created_at"
        ).fetchall()
    spans = []
    for run_id, created, updated, count in rows:
        span = datetime.fromisoformat(updated) - datetime.fromisoformat(created)
        spans.append((run_id, int(count), span.total_seconds()))
    return spans


def timed(mode: str, args: argparse.Namespace, db: Path) -> float:
    started = time.perf_counter()
    outcome = run_benchmark(
        "local/smollm2", db, mode=mode, n=args.n, game_n=args.game_n,
        game_max_tokens=args.game_max_tokens,
    )  # fmt: skip
    wall = time.perf_counter() - started
    total = outcome.summary.total.score
    score = "n/a" if total is None else f"{total:.1f}"
    print(f"\n--mode {mode}: {wall:.1f} s, total score {score}")
    print(f"{'run':<48}{'samples':>9}{'span s':>9}")
    for run_id, count, seconds in _spans(db):
        print(f"{run_id:<48}{count:>9}{seconds:>9.1f}")
    return wall


def old_shape() -> None:
    """Sampled requests as before issue 12, for the rest of this process."""
    from flipbench.providers import local

    async def no_logit_bias(self: local.LocalBackend, settings: object) -> None:
        return None  # the grammar constrains every answer set

    local.COMPLETIONS_PER_REQUEST = 1  # read by each new backend
    local.LocalBackend.size_for = lambda self, prompt, reply: None  # type: ignore[method-assign]
    local.LocalBackend._one_token_answers = no_logit_bias  # type: ignore[method-assign,assignment]


def planned(args: argparse.Namespace) -> None:
    """Each part's calls and planned time at these settings, and the sum against the target."""
    print(f"{'run':<16}{'mode':<20}{'calls':>8}   planned time")
    fewest = most = 0.0
    for run in PART_RUNS:
        mode, constrained = part_mode(run, "local/smollm2", "auto")
        game = run.game is not None
        n = args.game_n if game and args.game_n is not None else args.n
        config = RunConfig(
            experiment=run.experiment, model="local/smollm2", mode=mode, constrained=constrained,
            n=n, d=run.d, max_tokens=args.game_max_tokens if game else None,
        )  # fmt: skip
        experiment = check_run(config)
        conditions = len(experiment.conditions())
        calls = conditions if mode == "exact" else conditions * experiment.n
        low, high = local_run_seconds(
            experiment, calls, exact=mode == "exact", constrained=constrained
        )
        fewest, most = fewest + low, most + high
        label = mode + (", constrained" if constrained else "")
        print(f"{run.key:<16}{label:<20}{calls:>8,}   {duration(low)}–{duration(high)}")
    print(f"planned total: {duration(fewest)}–{duration(most)} (target < {TARGET_S:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="valid samples per condition")
    parser.add_argument("--game-n", type=int, default=None)
    parser.add_argument("--game-max-tokens", type=int, default=None)
    parser.add_argument("--compare-sample", action="store_true")
    parser.add_argument("--compare-old-shape", action="store_true")
    parser.add_argument("--plan", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args()
    if args.plan:
        planned(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        auto = timed("auto", args, Path(tmp) / "auto.db")
        verdict = "PASS" if auto < TARGET_S else "FAIL"
        print(f"{verdict}: the benchmark took {auto:.1f} s (target < {TARGET_S:.0f} s)")
        if args.compare_sample:
            sampled = timed("sample", args, Path(tmp) / "sample.db")
            print(f"sampled / auto: {sampled / auto:.1f}x the time")
        if args.compare_old_shape:
            old_shape()
            print("\nthe same, sampled requests shaped as before issue 12:")
            before = timed("auto", args, Path(tmp) / "old.db")
            print(f"old request shape / today's: {before / auto:.1f}x the time")


if __name__ == "__main__":
    main()
