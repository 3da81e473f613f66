"""The 100-point benchmark end to end: journal → cells → score → summary JSON → leaderboard."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonschema
import pytest
from cli_helpers import RUN_TIMEOUT, assert_ok, assert_one_line_error, flipbench
from pydantic import ValidationError
from synthetic_runs import kinds, make_run

from flipbench.benchmark import PART_RUNS, format_score, leaderboard, summarize
from flipbench.benchmark_models import (
    SCHEMA_COMMAND,
    BenchmarkSummary,
    Exp4Metrics,
    PartsSummary,
    ScoreEstimate,
    schema_text,
)
from flipbench.config import RunConfig
from flipbench.scoring import GAMES, PARTS
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs/benchmark-summary.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
PAIR_N = 400  # 400·p², 400·p(1−p), 400·(1−p)² are whole numbers for every p on the 5 % grid


def _row(key: str, index: int, **fields: object) -> SampleRecord:
    return SampleRecord(condition=key, sample_index=index, status="ok", request={}, response={},
                        valid=True, **fields)  # type: ignore[arg-type]  # fmt: skip


def _calibrated_benchmark(db: Path, bench_id: str) -> None:
    """A model that follows every requested distribution exactly (two flips: exact counts)."""
    with Journal(db) as journal:
        for run in PART_RUNS:
            experiment = get_experiment(run.experiment).resolve(d=run.d)
            mode = "sample" if run.experiment == "d-flips" else "exact"
            run_id = f"{bench_id}-{run.key}"
            config = RunConfig(experiment=run.experiment, model="synthetic/calibrated", mode=mode,
                               bench_id=bench_id, d=run.d, run_id=run_id)  # fmt: skip
            journal.create_run(
                run_id=run_id, experiment=experiment.name, model=config.model, mode=mode,
                config=config.model_dump(mode="json"),
                definition=experiment.model_dump(mode="json"),
                definition_hash=experiment.definition_hash(), versions={},
            )  # fmt: skip
            for cond in experiment.conditions():
                if mode == "exact":
                    second = next(a for a in cond.answers if a != cond.first)
                    probs = cond.target or {cond.first: cond.x, second: 1 - cond.x}
                    journal.record(run_id, _row(cond.key, 0, probs=dict(probs), coverage=1.0))
                    continue
                k = round(20 * cond.x)  # p = k / 20
                counts = {"1 1": k * k, "1 0": k * (20 - k), "0 1": k * (20 - k),
                          "0 0": (20 - k) ** 2}  # fmt: skip
                index = 0
                for answer, count in counts.items():
                    for _ in range(count):
                        journal.record(run_id, _row(cond.key, index, answer=answer))
                        index += 1
                assert index == PAIR_N
            journal.set_status(run_id, "complete")


def test_a_perfectly_calibrated_model_scores_100(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    _calibrated_benchmark(db, "perfect")
    summary = summarize(db, "perfect", n_boot=200)
    written = json.loads(summary.to_json())
    jsonschema.validate(written, SCHEMA)  # the committed schema accepts what bench writes
    assert BenchmarkSummary.model_validate(written) == summary  # and reads it back as written
    scores = {name: part.score for name, part in summary.parts.by_name().items()}
    assert scores["exp1"] == scores["exp2"] == scores["exp3"] == scores["exp5"] == 20.0
    # Exp4's grids stop at x ≈ 0.0099 and 0.9901, and S extends r flat to 0 and 1: even r = x
    # leaves two corner triangles, S = 4·2·(0.0099²/2) ≈ 0.0004 per game, so Exp4 loses
    # (8 + 4)·0.0004 ≈ 0.005 of its 20 points; the total rounds to 100.0.
    exp4 = scores["exp4"]
    assert exp4 is not None and 19.99 < exp4 < 20.0
    assert format_score(summary.total.score) == "100.0"
    assert summary.complete and len(summary.runs) == 7
    assert summary.readings.direction == "strict-sign (raw+1)/2"
    # Exact parts have point intervals; the two-flip part was sampled (400 per p).
    assert summary.parts.exp1.ci == (20.0, 20.0)
    lo, hi = summary.parts.exp2.ci_low, summary.parts.exp2.ci_high
    assert lo is not None and hi is not None and lo < 20.0 and hi <= 20.0
    assert summary.parts.exp4.metrics.matching_pennies.d == 1.0
    assert summary.parts.exp4.metrics.matching_pennies.d_trend == 1.0
    assert summary.readings.direction_trend is not None and summary.bootstrap.method == "bias-aware"
    # The noise floor: an exact part is its own floor; the sampled two-flip part (400 replies
    # per p) is not (noise alone costs a calibrated model about a point there), so neither is
    # the total, and the interval of the sampled part reaches the true 20.
    assert summary.parts.exp1.noise_floor == 20.0
    assert summary.parts.exp4.noise_floor == pytest.approx(exp4, abs=1e-12)
    floor2, total_floor = summary.parts.exp2.noise_floor, summary.total.noise_floor
    assert floor2 is not None and 18.0 < floor2 < 20.0 and hi == 20.0
    assert total_floor is not None and total_floor == pytest.approx(60 + exp4 + floor2)

    rows = leaderboard(db)
    assert [r.bench_id for r in rows] == ["perfect"] and rows[0].complete
    assert rows[0].total.score == summary.total.score  # leaderboard: 1000 replicates, not 200


def test_undefined_numbers_are_null_in_a_partial_benchmark(tmp_path: Path) -> None:
    """One NaN policy: whatever scoring leaves undefined is None in the model, null in the JSON."""
    experiments = kinds(8.0)
    with Journal(tmp_path / "j.db") as journal:
        for key, kind in (("exp1", "flip"), ("exp3", "ternary"), ("exp5", "word-pair")):
            experiment, answer = experiments[kind]
            skip = frozenset([experiment.conditions()[2].key]) if key == "exp3" else frozenset()
            make_run(journal, f"part-{key}", experiment, answer, n=16, invalid=1, skip=skip)
    summary = summarize(tmp_path / "j.db", "part", n_boot=50)
    text = summary.to_json()
    jsonschema.validate(json.loads(text, parse_constant=_no_constant), SCHEMA)
    assert BenchmarkSummary.model_validate_json(text) == summary
    assert not summary.complete and len(summary.runs) == 3
    assert summary.total.score is None and summary.total.ci == (None, None)
    assert summary.parts.exp2.score is None and summary.parts.exp2.metrics.S_avg is None
    assert summary.parts.exp4.metrics.business.S is None
    assert summary.parts.exp1.score is not None and summary.parts.exp1.ci_low is not None
    exp3 = next(r for r in summary.runs if r.part == "exp3")
    assert [c.invalid_share for c in exp3.conditions if c.n_total == 0] == [None]
    assert any("no valid answers" in note for note in summary.parts.exp3.notes)


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} in a summary: strict JSON has no such number")


def test_non_finite_numbers_are_read_as_none() -> None:
    estimate = ScoreEstimate(score=math.nan, ci=(-math.inf, 1.5))
    assert (estimate.score, estimate.ci_low, estimate.ci_high) == (None, None, 1.5)
    assert json.loads(estimate.model_dump_json()) == {
        "score": None, "ci": [None, 1.5], "noise_floor": None, "corrected": None
    }  # fmt: skip
    with pytest.raises(ValidationError):  # a field that is always defined rejects them
        BenchmarkSummary.model_validate({**_minimal_summary(), "max_total": math.nan})
    with pytest.raises(ValidationError):  # and a summary is closed: no unknown keys
        BenchmarkSummary.model_validate({**_minimal_summary(), "extra": 1})
    BenchmarkSummary.model_validate(_minimal_summary())


def _minimal_summary() -> dict[str, object]:
    undefined = {"score": None, "ci": [None, None]}
    game = {"score": None, "S": None, "direction_raw": None, "d": None}
    metrics = {
        "exp1": {"S": None},
        "exp2": {"S1": None, "S2": None, "S_avg": None},
        "exp3": dict.fromkeys(("A0", "A1", "A2", "S0", "S1", "S2")),
        "exp4": dict.fromkeys(GAMES, game),
        "exp5": dict.fromkeys(("avg_pos_bias", "avg_red_bias", "Score_pos", "Score_sem"))
        | {"pairs": {}},
    }
    parts = {
        name: {**undefined, "max_score": 20.0, "metrics": metrics[name], "notes": []}
        for name in PARTS
    }
    readings = {"exp3_norm_diagonal": 0.43, "exp3_norm_flat": 0.36, "direction_dead_band": 0.0,
                "sem_divisor": 0.45, "direction": "strict-sign (raw+1)/2"}  # fmt: skip
    return {
        "schema_version": "1", "bench_id": "b", "model": "m", "created_at": "t",
        "flipbench_version": "0", "model_versions": {}, "complete": False, "total": undefined,
        "max_total": 100.0, "parts": parts, "readings": readings,
        "bootstrap": {"n_boot": 1, "confidence": 0.95, "seed": 0, "method": "percentile"},
        "runs": [],
    }  # fmt: skip


def test_the_models_follow_scoring() -> None:
    assert tuple(PartsSummary.model_fields) == PARTS
    assert tuple(Exp4Metrics.model_fields) == GAMES


def test_the_committed_schema_is_generated_from_the_models() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"{SCHEMA_PATH.name} is stale: the summary models changed. Regenerate it with\n"
        f"    .venv/bin/{SCHEMA_COMMAND}"
    )


def test_bench_cli_errors_are_one_line(tmp_path: Path) -> None:
    empty = flipbench("leaderboard", "--db", "none.db", cwd=tmp_path)
    assert "no journal at none.db" in assert_one_line_error(empty)
    _calibrated_benchmark(tmp_path / "j.db", "perfect")
    unknown = flipbench("bench", "--resume", "nope", "--db", "j.db", cwd=tmp_path)
    assert "no benchmark 'nope'" in assert_one_line_error(unknown)
    mode = flipbench("bench", "--mode", "fast", "--db", "j.db", cwd=tmp_path)
    assert "unknown mode 'fast'" in assert_one_line_error(mode)
    for fmt, marker in (("csv", "rank,model,total"), ("markdown", "| rank | model |")):
        listed = flipbench("leaderboard", "--format", fmt, "--db", "j.db", cwd=tmp_path)
        assert_ok(listed)
        assert marker in listed.stdout and "synthetic/calibrated" in listed.stdout
        assert "noise floor" in listed.stdout.splitlines()[0]  # beside each total


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2.5 min alone on 2 cores (d-flips, games, word-bias whole answers)
def test_bench_on_the_embedded_model_offline(tmp_path: Path) -> None:
    """The acceptance run: exact mode where possible, the games sampled (they reason, then
    choose), the summary validates, resume adds nothing to what is complete. SmolLM2 rarely ends
    a game reply with a choice, so the games are bounded here (1 answer, 1 attempt per
    condition, 64 tokens a reply): their runs end incomplete and the summary says so. The one
    sampled non-game part (two flips in one reply) takes N = 10 instead of 100: 210 replies."""
    proc = flipbench(
        "bench", "--db", "j.db", "--no-progress", "--n", "10", "--game-n", "1",
        "--game-max-tokens", "64",
        "--max-attempts-factor", "1", cwd=tmp_path, timeout=RUN_TIMEOUT * 5,
    )  # fmt: skip
    assert_ok(proc)
    match = re.search(r"summary: (\S+)", proc.stdout)
    assert match is not None, proc.stdout
    text = Path(match.group(1)).read_text()
    jsonschema.validate(json.loads(text), SCHEMA)
    summary = BenchmarkSummary.model_validate_json(text)
    modes = {r.experiment: (r.mode, r.constrained) for r in summary.runs}
    assert modes["single-flip"] == ("exact", False) and modes["d-flips"] == ("sample", True)
    assert modes["word-bias"] == ("exact", False) and modes["ternary"] == ("exact", False)
    for game in ("bioinformatics", "matching-pennies", "business"):
        assert modes[game] == ("sample", False)  # reasoning, then the choice: never exact
    status = {r.experiment: r.status for r in summary.runs}
    others = ("single-flip", "d-flips", "ternary", "word-bias")
    assert all(status[e] == "complete" for e in others), status
    assert summary.complete == all(s == "complete" for s in status.values())
    s1 = summary.parts.exp1.metrics.S
    assert s1 is not None and s1 > 1.5  # SmolLM2 answers "1" whatever p is
    for part in (summary.parts.exp1, summary.parts.exp2, summary.parts.exp3, summary.parts.exp5):
        assert part.score is not None and 0.0 <= part.score <= 20.0

    with Journal(tmp_path / "j.db", create=False) as journal:
        before = sum(1 for r in journal.list_runs() for _ in journal.samples(r.run_id))
    again = flipbench("bench", "--resume", summary.bench_id, "--db", "j.db", "--no-progress",
                      cwd=tmp_path, timeout=RUN_TIMEOUT)  # fmt: skip
    assert_ok(again)
    with Journal(tmp_path / "j.db", create=False) as journal:
        after = sum(1 for r in journal.list_runs() for _ in journal.samples(r.run_id))
    assert after == before
    board = flipbench("leaderboard", "--db", "j.db", cwd=tmp_path)
    assert_ok(board)
    assert "local/smollm2" in board.stdout
