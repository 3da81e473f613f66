"""`flipbench report` without a browser: what the file holds for several runs, a benchmark and
the sample browser's bounds, and the errors of a wrong id (tests/test_report_browser.py opens
the page in Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flipbench.config import RunConfig
from flipbench.report.metric_rows import metric_rows
from flipbench.results import compute_results
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment
from tests import synthetic_runs
from tests.cli_helpers import assert_ok, assert_one_line_error, flipbench


def _exact_bench_run(db: Path, bench_id: str) -> str:
    """The benchmark's Exp1 run only (exact, calibrated): a benchmark with one part scored."""
    experiment = get_experiment("single-flip").resolve()
    run_id = f"{bench_id}-exp1"
    config = RunConfig(model="synthetic/calibrated", mode="exact", bench_id=bench_id, run_id=run_id)
    with Journal(db) as journal:
        journal.create_run(
            run_id=run_id, experiment=experiment.name, model=config.model, mode="exact",
            config=config.model_dump(mode="json"), definition=experiment.model_dump(mode="json"),
            definition_hash=experiment.definition_hash(), versions={},
        )  # fmt: skip
        for cond in experiment.conditions():
            probs = {"1": cond.x, "0": 1 - cond.x}
            journal.record(run_id, SampleRecord(
                condition=cond.key, sample_index=0, status="ok", request={}, response={},
                valid=True, probs=probs, coverage=1.0))  # fmt: skip
        journal.set_status(run_id, "complete")
    return run_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "j.db"
    kinds = synthetic_runs.kinds()
    with Journal(path) as journal:
        for name, sharpness in (("steep", 12.0), ("soft", 3.0)):
            experiment, _ = kinds["flip"]
            answer = synthetic_runs.kinds(sharpness)["flip"][1]
            synthetic_runs.make_run(journal, name, experiment, answer, model=f"synthetic/{name}",
                                    invalid=3)  # fmt: skip
        synthetic_runs.make_run(journal, "words", *kinds["word-pair"])
    return path


def test_several_runs_share_one_page_with_their_overlay(db: Path) -> None:
    out = db.parent / "several.html"
    proc = flipbench("report", "steep", "soft", "words", "--db", str(db), "--out", str(out),
                     "--samples", "2", cwd=db.parent)  # fmt: skip
    assert_ok(proc)
    html = out.read_text()
    assert html.count('<h2 id="run-') == 3
    assert "Side by side: single-flip" in html  # the two flips, overlaid; the words alone
    assert "synthetic/steep" in html and "synthetic/soft" in html
    # 2 valid + 2 invalid per condition of the flips (7 conditions), 2 valid per word condition.
    rows = re.findall(r'<tr data-condition="[^"]*" data-valid="(\d)">', html)
    words = len(get_experiment("word-bias").resolve().conditions())
    assert len(rows) == 2 * 7 * 4 + 2 * words
    assert "http://" not in html and "https://" not in html


def test_a_benchmark_id_reports_its_scores_and_runs(db: Path) -> None:
    run_id = _exact_bench_run(db, "bench-x")
    proc = flipbench("report", "bench-x", "--db", str(db), cwd=db.parent)
    assert_ok(proc)
    out = db.parent / "flipbench-runs" / "bench-x" / "report.html"
    assert str(out) in proc.stdout
    html = out.read_text()
    assert "Benchmark bench-x" in html and run_id in html and "noise floor" in html
    assert "coverage" in html  # exact mode shows the answer tokens' coverage


def test_unknown_ids_and_bad_options_are_one_error_line(db: Path) -> None:
    for args in (("nope",), ("steep", "--samples", "-2"), ("../x",), ("steep", "--out", ".")):
        proc = flipbench("report", *args, "--db", str(db), cwd=db.parent)
        assert_one_line_error(proc)
    assert not (db.parent / "flipbench-runs").exists()


def test_metric_rows_carry_intervals_and_noise_floors(db: Path) -> None:
    with Journal(db, create=False) as journal:
        results = compute_results(journal, "steep")
    rows, left = metric_rows(results.metrics)
    (s,) = [r for r in rows if r.name == "S"]
    assert s.has_interval and s.noise_floor is not None and s.corrected is not None
    assert left == 0 and not any(r.name.endswith("_noise_floor") for r in rows)
