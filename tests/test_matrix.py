"""`flipbench matrix`: experiments × interventions × models, each cell an ordinary run, and the
table of each intervention against `direct` — ΔS with an interval whose coverage is measured
here, the invalid share, and the token and cost overhead per sample.

The models are scripted (`tests/matrix_backends.py`, registered under `planted/` for the test)
with planted behaviour: an argmax model that obeys a number it is given, so the given-seed
intervention must fix its S within the interval; the CLI and `kill -9` resume run on the
embedded model in the slow test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import offline_page
from cli_helpers import FLIPBENCH, flipbench

from flipbench import providers
from flipbench.config import RunConfig
from flipbench.curves import step_likeness_difference
from flipbench.errors import FlipbenchError
from flipbench.matrix import api
from flipbench.matrix.cells import MatrixOptions
from flipbench.metrics import step_likeness
from flipbench.store import Journal, NoJournal


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(providers._REGISTRY, "planted", "tests.matrix_backends:PlantedBackend")


def test_the_difference_interval_covers_the_true_delta_s() -> None:
    """Measured: a plain bootstrap of the difference covered 0 % (step vs calibrated) and
    MOVER 57 %; the differenced √0.95 intervals cover in every configuration."""
    x = np.linspace(0, 1, 21)
    curves = {
        "calibrated": x.copy(),
        "step": np.where(x > 0.5, 0.99, 0.01),
        "flat": np.full_like(x, 0.8),
        "partial": np.clip(0.5 + 1.6 * (x - 0.5), 0.02, 0.98),
    }
    rng = np.random.default_rng(16)
    reps = 60
    for base, other, n in (("step", "calibrated", 100), ("calibrated", "partial", 100),
                           ("flat", "calibrated", 50), ("partial", "partial", 30)):  # fmt: skip
        ra, rb = curves[base], curves[other]
        true = step_likeness(x, rb) - step_likeness(x, ra)
        hits = 0
        for i in range(reps):
            ka, kb = rng.binomial(n, ra), rng.binomial(n, rb)
            e = step_likeness_difference(x, ka, np.full(21, n), kb, np.full(21, n),
                                         n_boot=200, seed=i)  # fmt: skip
            hits += e.low <= true <= e.high
        coverage = hits / reps
        print(f"ΔS coverage {other} − {base}, N={n}: {coverage:.3f} (true ΔS {true:+.3f})")
        assert coverage >= 0.93


def test_given_seed_fixes_the_argmax_model_within_its_interval(
    planted: None, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    lines: list[str] = []
    options = MatrixOptions(
        experiments=["single-flip"], interventions=["given-seed"],
        models=["planted/argmax", "planted/sampler"], run=RunConfig(n=60),
    )  # fmt: skip
    outcome = api.start_matrix(options, db, notify=lines.append)
    assert outcome.status == "complete", lines
    assert lines[0].startswith("plan: 1 experiment(s) × 2 intervention(s) × 2 model(s) = 4 runs")
    table = api.matrix_table_of(outcome.matrix_id or "", db)
    rows = {(r.model, r.intervention): r for r in table.rows}
    assert [r.intervention for r in table.rows] == ["direct", "given-seed"] * 2
    direct, seeded = rows[("planted/argmax", "direct")], rows[("planted/argmax", "given-seed")]
    assert direct.s is not None and direct.s.value == pytest.approx(1.0)
    assert seeded.delta_s is not None and seeded.s is not None
    # fixed: the seeded S is a sampler's (its interval holds the calibrated floor) and ΔS is
    # large and certain
    with Journal(db, create=False) as journal:
        from flipbench.results import compute_results

        floor = compute_results(journal, seeded.run_id).s_noise_floor
    assert seeded.s.low <= floor <= seeded.s.high
    assert seeded.delta_s.high < -0.5
    assert seeded.delta_s.low <= seeded.s.value - 1.0 <= seeded.delta_s.high
    # the sampler is already calibrated: the number changes nothing within noise
    sampler = rows[("planted/sampler", "given-seed")].delta_s
    assert sampler is not None and sampler.low <= 0.0 <= sampler.high
    for r in table.rows:
        assert r.invalid_share == 0.0 and r.valid == 21 * 60
        assert r.cost_per_sample == pytest.approx(0.0001)
    # single-flip is the benchmark's part 1: its score out of 20 rises with the given number
    assert direct.part == seeded.part == "exp1"
    assert direct.score is not None and seeded.score is not None
    assert seeded.delta_score is not None and seeded.delta_score.low > 5.0
    assert seeded.delta_score.value == pytest.approx(seeded.score.value - direct.score.value)
    # the given number lengthens the prompt: more tokens per sample than direct
    assert seeded.token_ratio is not None and seeded.token_ratio > 1.0
    assert table.spent == pytest.approx(4 * 21 * 60 * 0.0001)


def test_the_budget_belongs_to_the_matrix(planted: None, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    options = MatrixOptions(
        experiments=["single-flip"], interventions=["system-persona"], models=["planted/argmax"],
        run=RunConfig(n=20), max_cost=0.05,  # 420 replies a run at $0.0001: one run and a bit
    )  # fmt: skip
    outcome = api.start_matrix(options, db)
    assert outcome.status == "stopped" and outcome.row is not None
    states = [m.state for m in outcome.row.models]
    assert states[0] == "complete" and states[1] == "stopped"
    table = api.matrix_table_of(outcome.matrix_id or "", db)
    assert 0.05 <= table.spent <= 0.05 + 8 * 0.0001  # at most one concurrency window over
    resumed = api.resume_matrix(outcome.matrix_id or "", db, max_cost=0.2)
    assert resumed.status == "complete"
    assert api.matrix_table_of(outcome.matrix_id or "", db).rows[1].valid == 21 * 20


def test_bad_cells_are_refused_before_anything_is_written(planted: None, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    for bad, said in (
        ({"interventions": ["no-such"]}, "unknown intervention 'no-such'"),
        ({"experiments": ["nope"]}, "unknown experiment 'nope'"),
        ({"models": ["nowhere/x"]}, "unknown model 'nowhere/x'"),
    ):
        fields = {"experiments": ["single-flip"], "models": ["planted/argmax"], **bad}
        with pytest.raises(FlipbenchError, match=said):
            api.start_matrix(MatrixOptions(**fields), db)  # type: ignore[arg-type]
    assert not db.exists()
    planned = api.start_matrix(
        MatrixOptions(experiments=["single-flip"], models=["planted/argmax"]), db, dry_run=True
    )
    assert planned.matrix_id is None and not db.exists()


def test_cli_dry_run_prints_the_plan_and_errors_are_one_line(tmp_path: Path) -> None:
    proc = flipbench("matrix", "-e", "single-flip", "-i", "given-seed", "-i", "cot",
                     "-m", "local/smollm2", "--n", "5", "--dry-run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "= 3 runs" in proc.stdout and "single-flip · given-seed · local/smollm2" in proc.stdout
    assert not (tmp_path / "flipbench.db").exists()
    bad = flipbench("matrix", "-e", "single-flip", "-i", "magic", "-m", "local/smollm2",
                    cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown intervention 'magic'")
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "flipbench.db").exists()


@pytest.mark.slow
def test_a_matrix_on_the_embedded_model_resumes_after_kill_9(tmp_path: Path) -> None:
    """Offline on SmolLM2: single-flip × {direct, given-seed}; killed mid-run, resumed: every
    cell finished, no condition past N valid or its attempt cap, no sample asked twice (the
    journal's unique key would refuse it)."""
    db = tmp_path / "j.db"
    args = [
        str(FLIPBENCH), "matrix", "-e", "single-flip", "-i", "given-seed", "-m", "local/smollm2",
        "--n", "4", "--grid", "zoom", "--no-progress", "--db", str(db),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "FLIPBENCH_DB"}
    log = (tmp_path / "matrix.log").open("w")
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    started = time.monotonic()
    killed = False
    while proc.poll() is None and time.monotonic() - started < 300:
        if db.exists():
            try:
                with Journal(db, create=False) as journal:
                    runs = journal.list_runs()
                    second = runs[1].run_id if len(runs) >= 2 else None
                    done = (
                        sum(c[1] for c in journal.condition_counts(second).values())
                        if second else 0
                    )  # fmt: skip
            except NoJournal:  # the matrix is creating it this very moment
                done = 0
            if done >= 4:  # the second cell is part way: kill the process mid-run
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.2)
    proc.wait(timeout=30)
    log.close()
    assert killed, (tmp_path / "matrix.log").read_text()
    listed = flipbench("sweep", "list", "--db", str(db), cwd=tmp_path)
    matrix_id = next(w for w in listed.stdout.split() if w.startswith("matrix-"))
    resumed = flipbench("matrix", "--resume", matrix_id, "--no-progress", "--db", str(db),
                        cwd=tmp_path, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"matrix {matrix_id}: complete" in resumed.stdout
    table = api.matrix_table_of(matrix_id, db)
    # SmolLM2 answers an unconstrained flip with a bare digit only now and then: a condition
    # may end at its attempt cap (5 × N) short of N valid ("incomplete", final), never beyond
    assert all(r.state in ("complete", "incomplete") for r in table.rows), table.rows
    with Journal(db, create=False) as journal:
        for r in table.rows:
            counts = journal.condition_counts(r.run_id)
            assert len(counts) == 5, counts
            for valid, rows, _ in counts.values():
                assert valid <= 4 and rows <= 20 and (valid == 4 or rows == 20), counts
    shown = flipbench("matrix", "show", matrix_id, "--db", str(db), cwd=tmp_path)
    assert shown.returncode == 0 and "given-seed" in shown.stdout and "ΔS" in shown.stdout


def test_the_report_of_a_matrix_shows_the_table_and_figure_in_chromium(
    planted: None, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    options = MatrixOptions(
        experiments=["single-flip"], interventions=["given-seed", "system-persona"],
        models=["planted/argmax"], run=RunConfig(n=30),
    )  # fmt: skip
    matrix_id = api.start_matrix(options, db).matrix_id or ""
    out = tmp_path / "matrix.html"
    proc = flipbench("report", matrix_id, "--db", str(db), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert html.count("<script") == 1 and "http://" not in html and "https://" not in html
    with offline_page(out, height=900) as (page, requests):
        page.screenshot(path=str(tmp_path / "matrix.png"))
        dom = page.evaluate(
            """() => ({
            widths: Array.from(document.images).map(i => i.naturalWidth),
            rows: Array.from(document.querySelectorAll('table.matrix tbody tr')).map(
                tr => Array.from(tr.cells).map(td => td.innerText)),
            title: document.title,
        })"""
        )
    assert requests == [out.resolve().as_uri()]
    assert dom["widths"] and all(w > 0 for w in dom["widths"])  # the ΔS figure, drawn
    assert matrix_id in dom["title"]
    by_intervention = {row[2]: row for row in dom["rows"]}
    assert set(by_intervention) == {"direct", "given-seed", "system-persona"}
    assert by_intervention["direct"][5] == "—"  # the baseline has no ΔS of its own
    assert by_intervention["given-seed"][5].startswith("-0.")  # fixed: ΔS well below 0
    assert (tmp_path / "matrix.png").stat().st_size > 10_000


def test_the_gap_shows_a_model_that_states_right_but_samples_the_argmax(
    planted: None, tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    options = MatrixOptions(
        experiments=["single-flip"], interventions=["verbalized"],
        models=["planted/argmax", "planted/sampler"], run=RunConfig(n=25),
    )  # fmt: skip
    matrix_id = api.start_matrix(options, db).matrix_id or ""
    rows = {(r.model, r.intervention): r for r in api.matrix_table_of(matrix_id, db).rows}
    from flipbench.report.gap import knowledge_gap

    with Journal(db, create=False) as journal:
        knower = knowledge_gap(journal, rows[("planted/argmax", "verbalized")].run_id)
        sampler = knowledge_gap(journal, rows[("planted/sampler", "verbalized")].run_id)
        with pytest.raises(FlipbenchError, match="--intervention verbalized"):
            knowledge_gap(journal, rows[("planted/argmax", "direct")].run_id)
    for g in (knower, sampler):  # both state the requested p, reply by reply
        assert g.stated_error == pytest.approx(0.0, abs=1e-3)
        assert all(c.stated_n == 25 for c in g.conditions)
    # the knower samples a step: far from what it states; the sampler within noise of it
    assert knower.gap is not None and knower.gap > 0.2
    assert sampler.gap is not None and sampler.gap < 0.15  # binomial noise of 25 draws
    for c in knower.conditions:
        assert c.sampled == (1.0 if c.p > 0.5 else 0.0)
    out = tmp_path / "m.html"
    proc = flipbench("report", matrix_id, "--db", str(db), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count("<figcaption>knowledge-gap") == 2  # one per verbalized cell
    shown = flipbench("gap", knower.run_id, "--db", str(db), "--out", str(tmp_path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "gap mean|sampled − stated|" in shown.stdout
    assert (tmp_path / "knowledge-gap.png").stat().st_size > 5_000
