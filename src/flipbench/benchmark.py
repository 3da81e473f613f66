"""The 100-point benchmark (docs/benchmark.md): seven runs, a score, a JSON summary, a leaderboard.

A benchmark is a group of ordinary journaled runs (`<bench id>-exp1`, …) tagged with the same
`bench_id`, so it resumes run by run and every sample stays inspectable. The score is always
recomputed from the journal: the summary JSON is a report, never the source of truth.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flipbench import __version__
from flipbench.analysis import ConditionData, cells, flip_cells, pair_cells, word_cells
from flipbench.benchmark_models import (
    SCHEMA_VERSION,
    BenchmarkSummary,
    BootstrapSettings,
    PartName,
    PartsSummary,
    RunSummary,
    ScoreEstimate,
    SummaryReadings,
)
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from flipbench.providers import backend_class
from flipbench.results import RunResults, compute_results
from flipbench.scoring import (
    BenchmarkParts,
    bootstrap_benchmark,
    noise_floor_benchmark,
    score_benchmark,
)
from flipbench.store import Journal, RunRow, validate_run_id
from flipbench.tasks import get_experiment

N_BOOT = 1000


@dataclass(frozen=True)
class PartRun:
    """One run of the benchmark: which part it feeds and with what experiment settings."""

    key: str  # run-id suffix
    part: PartName
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
    summary: BenchmarkSummary
    path: Path | None
    statuses: dict[str, str]


def part_mode(run: PartRun, model: str, mode: str) -> tuple[str, bool]:
    """(mode, constrained) for one run: `auto` reads probabilities wherever it can.

    The games are always sampled, unconstrained: they ask for reasoning and then a choice, and
    the first token of a reply with no reasoning (their only exact reading, and what a grammar
    admitting only the answer would force) is not that game.
    Sampled parts on a backend that can constrain (local llama.cpp) use the grammar: a small
    local model rarely answers in the format otherwise, and the grammar is what structured
    output does on APIs. The choice is recorded per run and in the summary.
    """
    cls = backend_class(model)
    definition = get_experiment(run.experiment)
    exact_ok = definition.exact and definition.exact_reading == "answer" and cls.supports_exact
    if mode == "exact" and not exact_ok:
        chosen = "sample"
    elif mode == "auto":
        chosen = "exact" if exact_ok else "sample"
    else:
        chosen = mode
    # A grammar that admits only the answer would cut a game's reasoning too.
    reasons = definition.exact_reading == "first-token"
    return chosen, chosen == "sample" and cls.supports_constrained and not reasons


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
    game_n: int | None = None,
    game_max_tokens: int | None = None,
) -> BenchmarkOutcome:
    """Run (or resume) every part, then score it from the journal and write the summary.

    The games are sampled at length (they reason before they choose): `game_n` and
    `game_max_tokens` bound what that costs, e.g. on a small local model that rarely ends a
    game reply with a choice. Both are recorded in each game run's configuration.
    """
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
            game = run.game is not None
            config = (base or RunConfig()).model_copy(
                update=dict(
                    experiment=run.experiment, model=model, mode=chosen, constrained=constrained,
                    n=game_n if game and game_n is not None else n, d=run.d, run_id=run_id,
                    bench_id=bench_id,
                    max_tokens=game_max_tokens if game else (base or RunConfig()).max_tokens,
                )
            )  # fmt: skip
            say(f"{run_id}: {run.experiment} ({chosen}{', constrained' if constrained else ''})")
            outcome = api.start_run(config, db, progress=progress, notify=notify)
        statuses[run.key] = outcome.status
    summary = summarize(db, bench_id)
    path = json_path or api.run_dir(db, bench_id) / "benchmark.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary.to_json())
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


def summarize(db: Path, bench_id: str, *, n_boot: int = N_BOOT) -> BenchmarkSummary:
    """The summary (docs/benchmark-summary.schema.json) recomputed from the journal.

    Undefined numbers (NaN in scoring) become None: the models' one NaN policy.
    """
    results = _results(db, bench_id)
    parts = parts_of(results)
    score = score_benchmark(parts)
    intervals = bootstrap_benchmark(parts, n_boot=n_boot, seed=0)
    floors = noise_floor_benchmark(parts, n_sim=n_boot, seed=0)
    runs = [_run_summary(run, r) for run in PART_RUNS if (r := results.get(run.key)) is not None]
    first = next(iter(results.values()))
    part_scores = PartsSummary.model_validate(
        {
            name: {
                "score": p.score,
                "ci": intervals.intervals[name],
                "noise_floor": floors[name],
                "corrected": intervals.corrected[name],
                "max_score": p.max_score,
                "metrics": p.metrics,
                "notes": list(p.notes),
            }
            for name, p in score.parts.items()
        }
    )
    return BenchmarkSummary(
        schema_version=SCHEMA_VERSION,
        bench_id=bench_id,
        model=first.run.model,
        created_at=min(r.run.created_at for r in results.values()),
        flipbench_version=__version__,
        model_versions=first.run.versions.get("model", {}),
        complete=len(results) == len(PART_RUNS)
        and all(r.run.display_status == "complete" for r in results.values()),
        total=ScoreEstimate(
            score=score.total,
            ci=intervals.intervals["total"],
            noise_floor=floors["total"],
            corrected=intervals.corrected["total"],
        ),
        max_total=100.0,
        parts=part_scores,
        readings=SummaryReadings.model_validate(score.readings),
        bootstrap=BootstrapSettings(
            n_boot=n_boot,
            confidence=intervals.confidence,
            seed=intervals.seed,
            method="bias-aware",
            noise_floor_draws=n_boot,
        ),
        runs=runs,
    )


def _run_summary(run: PartRun, r: RunResults) -> RunSummary:
    """One run as the summary records it: settings and per-condition counts."""
    return RunSummary.model_validate(
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


@dataclass(frozen=True)
class LeaderboardRow:
    """One benchmark on the leaderboard, read from its summary."""

    bench_id: str
    model: str
    total: ScoreEstimate
    parts: PartsSummary
    complete: bool
    created_at: str

    @classmethod
    def of(cls, summary: BenchmarkSummary) -> LeaderboardRow:
        return cls(
            summary.bench_id,
            summary.model,
            summary.total,
            summary.parts,
            summary.complete,
            summary.created_at,
        )


def leaderboard(db: Path) -> list[LeaderboardRow]:
    """Every benchmark in the journal, best total first (incomplete ones last)."""
    with Journal(db, create=False) as journal:
        ids = sorted(
            {str(r.config["bench_id"]) for r in journal.list_runs() if r.config.get("bench_id")}
        )
    rows = [LeaderboardRow.of(summarize(db, bench_id, n_boot=N_BOOT)) for bench_id in ids]
    return sorted(rows, key=lambda r: (r.total.score is None, -(r.total.score or 0.0)))


def format_score(value: float | None, ci: Sequence[float | None] | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if ci is None or ci[0] is None or ci[1] is None:
        return f"{value:.1f}"
    return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"
