"""The 100-point benchmark (docs/benchmark.md): seven runs, a score, a JSON summary, a leaderboard.

A benchmark is a group of ordinary journaled runs (`<bench id>-exp1`, …) tagged with the same
`bench_id`, so it resumes run by run and every sample stays inspectable. The score is always
recomputed from the journal: the summary JSON is a report, never the source of truth.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flipbench import __version__
from flipbench.analysis import ConditionData, cells, flip_cells, pair_cells, word_cells
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from flipbench.providers import backend_class
from flipbench.results import RunResults, compute_results, strict_json
from flipbench.scoring import BenchmarkParts, bootstrap_benchmark, score_benchmark
from flipbench.store import Journal, RunRow, validate_run_id
from flipbench.tasks import get_experiment

SCHEMA_VERSION = "1"
N_BOOT = 1000


@dataclass(frozen=True)
class PartRun:
    """One run of the benchmark: which part it feeds and with what experiment settings."""

    key: str  # run-id suffix
    part: str  # exp1 … exp5
    experiment: str
    d: int | None = None
    game: str | None = None


PART_RUNS = (
    PartRun("exp1", "exp1", "single-flip"),
    PartRun("exp2", "exp2", "d-flips", d=2),
    PartRun("exp3", "exp3", "ternary"),
    PartRun("exp4-bio", "exp4", "bioinformatics", game="bioinformatics"),
    PartRun("exp4-pennies", "exp4", "matching-pennies", game="matching_pennies"),
    PartRun("exp4-business", "exp4", "business", game="business"),
    PartRun("exp5", "exp5", "word-bias"),
)


@dataclass
class BenchmarkOutcome:
    bench_id: str
    model: str
    summary: dict[str, Any]
    path: Path | None
    statuses: dict[str, str]


def part_mode(run: PartRun, model: str, mode: str) -> tuple[str, bool]:
    """(mode, constrained) for one run: `auto` reads probabilities wherever it can.

    Sampled parts on a backend that can constrain (local llama.cpp) use the grammar: a small
    local model rarely answers in the format otherwise, and the grammar is what structured
    output does on APIs. The choice is recorded per run and in the summary.
    """
    cls = backend_class(model)
    exact_ok = get_experiment(run.experiment).exact and cls.supports_exact
    if mode == "exact" and not exact_ok:
        chosen = "sample"
    elif mode == "auto":
        chosen = "exact" if exact_ok else "sample"
    else:
        chosen = mode
    return chosen, chosen == "sample" and cls.supports_constrained


def run_benchmark(
    model: str,
    db: Path,
    *,
    bench_id: str | None = None,
    mode: str = "auto",
    n: int | None = None,
    base: RunConfig | None = None,
    json_path: Path | None = None,
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
) -> BenchmarkOutcome:
    """Run (or resume) every part, then score it from the journal and write the summary."""
    from flipbench import api  # the benchmark is built on the run API, not beside it

    if mode not in ("auto", "exact", "sample"):
        raise FlipbenchError(f"unknown mode {mode!r} (use auto, exact or sample)")
    backend_class(model)  # a wrong model name fails before anything runs
    bench_id = bench_id or f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    validate_run_id(bench_id, "benchmark id")  # it names runs and the summary's folder
    existing = {r.run_id: r for r in api.list_runs(db)} if db.exists() else {}
    statuses: dict[str, str] = {}
    say = notify or (lambda _: None)
    for run in PART_RUNS:
        run_id = f"{bench_id}-{run.key}"
        if run_id in existing:
            if existing[run_id].model != model:
                raise FlipbenchError(f"{bench_id} was run with {existing[run_id].model}")
            say(f"{run_id}: resuming")
            outcome = api.resume_run(run_id, db, progress=progress, notify=notify)
        else:
            chosen, constrained = part_mode(run, model, mode)
            config = (base or RunConfig()).model_copy(
                update=dict(
                    experiment=run.experiment, model=model, mode=chosen, constrained=constrained,
                    n=n, d=run.d, run_id=run_id, bench_id=bench_id,
                )
            )  # fmt: skip
            say(f"{run_id}: {run.experiment} ({chosen}{', constrained' if constrained else ''})")
            outcome = api.start_run(config, db, progress=progress, notify=notify)
        statuses[run.key] = outcome.status
    summary = summarize(db, bench_id)
    path = json_path or api.run_dir(db, bench_id) / "benchmark.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return BenchmarkOutcome(bench_id, model, summary, path, statuses)


def runs_of(db: Path, bench_id: str) -> list[RunRow]:
    """The journaled runs of one benchmark (for --resume); a clear error when there are none."""
    validate_run_id(bench_id, "benchmark id")
    with Journal(db, create=False) as journal:
        runs = [r for r in journal.list_runs() if r.config.get("bench_id") == bench_id]
    if not runs:
        raise FlipbenchError(f"no benchmark {bench_id!r} in {db} (see `flipbench leaderboard`)")
    return runs


def _results(db: Path, bench_id: str) -> dict[str, RunResults]:
    with Journal(db, create=False) as journal:
        runs = {r.run_id: r for r in journal.list_runs()}
        found = {}
        for run in PART_RUNS:
            run_id = f"{bench_id}-{run.key}"
            if run_id in runs:
                found[run.key] = compute_results(journal, run_id)
    if not found:
        raise FlipbenchError(f"no benchmark {bench_id!r} in {db} (see `flipbench leaderboard`)")
    return found


def _data(results: RunResults) -> list[ConditionData]:
    """Conditions with their valid answers (sampled) or exact probabilities, from the results."""
    return [ConditionData(c, answers=list(a), probs=p) for c, a, p in results.raw]


def parts_of(results: dict[str, RunResults]) -> BenchmarkParts:
    """Scoring cells of each part from its runs (a missing run leaves its part unscored)."""
    exp4 = {}
    for run in PART_RUNS:
        if run.game and run.key in results:
            exp4[run.game] = cells(_data(results[run.key]))
    get = results.get
    return BenchmarkParts(
        exp1=flip_cells(_data(r)) if (r := get("exp1")) else (),
        exp2=pair_cells(_data(r)) if (r := get("exp2")) else (),
        exp3=cells(_data(r)) if (r := get("exp3")) else (),
        exp4=exp4,
        exp5=word_cells(_data(r)) if (r := get("exp5")) else (),
    )


def summarize(db: Path, bench_id: str, *, n_boot: int = N_BOOT) -> dict[str, Any]:
    """The summary JSON (docs/benchmark-summary.schema.json) recomputed from the journal."""
    results = _results(db, bench_id)
    parts = parts_of(results)
    score = score_benchmark(parts)
    intervals = bootstrap_benchmark(parts, n_boot=n_boot, seed=0)
    scored: Any = score.to_dict()
    runs = []
    for run in PART_RUNS:
        r = results.get(run.key)
        if r is None:
            continue
        runs.append(
            {
                "part": run.part,
                "run_id": r.run.run_id,
                "experiment": r.experiment.name,
                "status": r.run.display_status,
                "mode": r.run.mode,
                "constrained": bool(r.run.config.get("constrained")),
                "settings": {
                    "temperature": r.experiment.temperature,
                    "max_tokens": r.experiment.max_tokens,
                    "n": r.experiment.n,
                    "d": r.experiment.d,
                    "prompt_version": r.experiment.version,
                    "definition_hash": r.run.definition_hash,
                    "model_options": r.run.config.get("model_options") or {},
                    "answer_from_reasoning": bool(r.run.config.get("answer_from_reasoning")),
                },
                "conditions": [
                    {
                        "key": c.condition,
                        "x": c.p,
                        "n_valid": c.n_valid,
                        "n_total": c.n_total,
                        "invalid_share": c.invalid_share,
                        "invalid": c.invalid,
                    }
                    for c in r.conditions
                ],
                "cost_usd": r.cost_usd,
            }
        )
    first = next(iter(results.values()))
    part_scores = {
        name: {**body, "ci": list(intervals.intervals[name])}
        for name, body in scored["parts"].items()
    }
    summary = {
        "schema_version": SCHEMA_VERSION,
        "bench_id": bench_id,
        "model": first.run.model,
        "created_at": min(r.run.created_at for r in results.values()),
        "flipbench_version": __version__,
        "model_versions": first.run.versions.get("model", {}),
        "complete": len(results) == len(PART_RUNS)
        and all(r.run.display_status == "complete" for r in results.values()),
        "total": {"score": scored["total"], "ci": list(intervals.intervals["total"])},
        "max_total": 100.0,
        "parts": part_scores,
        "readings": scored["readings"],
        "bootstrap": {"n_boot": n_boot, "confidence": 0.95, "seed": 0, "method": "percentile"},
        "runs": runs,
    }
    clean: dict[str, Any] = strict_json(summary)
    return clean


@dataclass(frozen=True)
class LeaderboardRow:
    bench_id: str
    model: str
    total: float | None
    ci: tuple[float | None, float | None]
    parts: dict[str, float | None]
    complete: bool
    created_at: str


def leaderboard(db: Path) -> list[LeaderboardRow]:
    """Every benchmark in the journal, best total first (incomplete ones last)."""
    with Journal(db, create=False) as journal:
        ids = sorted(
            {str(r.config["bench_id"]) for r in journal.list_runs() if r.config.get("bench_id")}
        )
    rows = []
    for bench_id in ids:
        s = summarize(db, str(bench_id), n_boot=N_BOOT)
        parts = {k: v.get("score") for k, v in s["parts"].items()}
        ci = s["total"]["ci"]
        rows.append(
            LeaderboardRow(
                s["bench_id"],
                s["model"],
                s["total"]["score"],
                (ci[0], ci[1]),
                parts,
                s["complete"],
                s["created_at"],
            )
        )
    return sorted(rows, key=lambda r: (r.total is None, -(r.total or 0.0)))


def format_score(value: float | None, ci: Sequence[float | None] | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if ci is None or ci[0] is None or ci[1] is None:
        return f"{value:.1f}"
    return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"
