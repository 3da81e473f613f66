"""`flipbench sweep` on 240 scripted models served by the loopback fault server: the plan comes
before any call, the budget holds for the whole sweep, dead models cost at most a handful of
calls and are listed with reasons, the ranking recovers the planted biases, and a sweep killed
with SIGKILL resumes as one unit with nothing lost or duplicated."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import FLIPBENCH, flipbench
from scipy.stats import spearmanr

from flipbench.metrics import wilson_interval
from flipbench.store import RunLock, RunLocked
from flipbench.sweep import api
from flipbench.sweep.catalogue import DEFAULT_EXCLUDE, select_models
from flipbench.sweep.ranking import SweepRanking, bias_interval
from flipbench.sweep.runner import SweepOptions
from flipbench.testing.fault_server import FaultConfig, ModelScript, running_in_thread

MODELS = 240
DEAD = {i for i in range(MODELS) if i % 10 == 7}  # 24 models: 404 "No endpoints found"
LIMITED = {i for i in range(MODELS) if i % 12 == 1}  # 20 models: 30 % of requests get a 429
PRICEY = 5  # the one model with its own (higher) cost per call
LIVE = [i for i in range(MODELS) if i not in DEAD]


def _model_id(i: int) -> str:
    return f"lab{i % 9}/model-{i:03d}"


def _entry(model_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
        "supported_parameters": ["temperature", "max_tokens"],
        "architecture": {"output_modalities": ["text"]},
        **extra,
    }


def _catalogue() -> tuple[list[dict[str, Any]], dict[str, ModelScript], dict[str, float]]:
    """240 chat models with known biases, and entries the default filter must leave out."""
    rng = random.Random(15)
    entries, scripts, biases = [], {}, {}
    for rank, i in enumerate(LIVE):  # biases spread over [0, 0.5], on either side of 0.5
        biases[_model_id(i)] = 0.5 * rank / (len(LIVE) - 1)
    for i in range(MODELS):
        mid = _model_id(i)
        entries.append(_entry(mid))
        if i in DEAD:
            scripts[mid] = ModelScript(fatal="404")
            continue
        p_one = 0.5 + rng.choice((-1, 1)) * biases[mid]
        scripts[mid] = ModelScript(
            p_one=p_one,
            rate_limit=0.3 if i in LIMITED else None,
            cost_per_call=0.0005 if i == PRICEY else None,
        )
    entries += [
        _entry("openrouter/auto"),
        _entry("meta-llama/llama-guard-4-12b"),
        _entry("lab0/model-000:free"),
        _entry("lab1/painter", architecture={"output_modalities": ["image"]}),
    ]
    return entries, scripts, biases


@pytest.fixture(scope="module")
def big_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One sweep of the 240 models at N=50 (N: the planted biases, 0–0.5, are ranked with
    Spearman ≥ 0.9 only from ~40 draws a model; 20 gives ~0.85)."""
    entries, scripts, biases = _catalogue()
    db = tmp_path_factory.mktemp("sweep") / "j.db"
    cfg = FaultConfig(retry_after_s=0.05, cost_per_call=0.00001)
    old = {k: os.environ.get(k) for k in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")}
    with running_in_thread(cfg, models=entries, scripts=scripts) as server:
        os.environ["OPENROUTER_API_KEY"] = "sk-or-v1-sweep-test"
        os.environ["OPENROUTER_BASE_URL"] = server.base_url
        try:
            selection, chosen = api.choose_models()
            at_plan: list[int] = []
            lines: list[str] = []

            def notify(line: str) -> None:
                if line.startswith("plan:"):
                    at_plan.append(server.counts.get("requests", 0))
                lines.append(line)

            started = time.monotonic()
            outcome = api.start_sweep(SweepOptions(n=50), selection, chosen, db, notify=notify)
            seconds = time.monotonic() - started
            ranking = api.sweep_ranking(outcome.sweep_id or "", db)
            yield {
                "selection": selection, "outcome": outcome, "ranking": ranking, "db": db,
                "biases": biases, "at_plan": at_plan, "lines": lines, "seconds": seconds,
                "model_counts": server.model_counts, "counts": server.counts,
            }  # fmt: skip
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def test_the_catalogue_filter_keeps_the_chat_models_and_says_why_it_left_others_out() -> None:
    entries, _, _ = _catalogue()
    selection = select_models(entries)
    assert len(selection.models) == MODELS
    assert selection.left_out == {
        "openrouter/auto": "excluded by 'openrouter/auto'",
        "meta-llama/llama-guard-4-12b": "excluded by 'meta-llama/llama-guard-*'",
        "lab0/model-000:free": ":free variant (add --free to include them)",
        "lab1/painter": "outputs image, not text",
    }
    assert "openai/o1-pro" in DEFAULT_EXCLUDE
    with_free = select_models(entries, free=True, include=["lab0/*"], require=["temperature"])
    ids = [m.id for m in with_free.models]
    assert "lab0/model-000:free" in ids and len(ids) == 27 + 1
    assert len(select_models(entries, require=["logprobs"]).models) == 0


def test_the_plan_is_printed_before_any_call(big_sweep: dict[str, Any]) -> None:
    assert big_sweep["at_plan"] == [0]  # the server had seen no chat request at plan time
    plan = big_sweep["outcome"].plan
    assert (plan.models, plan.conditions, plan.n, plan.calls) == (240, 1, 50, 12_000)
    assert plan.cost[0] > 0 and plan.cost[1] > plan.cost[0]
    assert big_sweep["lines"][0].startswith("plan: 240 models × 1 condition(s) × N=50")


def test_dead_models_cost_at_most_five_calls_and_are_listed_with_reasons(
    big_sweep: dict[str, Any],
) -> None:
    ranking: SweepRanking = big_sweep["ranking"]
    counts = big_sweep["model_counts"]
    dead = {_model_id(i) for i in DEAD}
    assert {u.model for u in ranking.unranked} == dead
    for u in ranking.unranked:
        assert u.state == "skipped"
        assert u.reason is not None and "HTTP 404" in u.reason and "No endpoints" in u.reason
        assert 1 <= counts[u.model] <= 5
    print(f"calls per dead model: {sorted({counts[u.model] for u in ranking.unranked})}")
    assert big_sweep["outcome"].status == "complete"


def test_the_ranking_recovers_the_planted_biases(big_sweep: dict[str, Any]) -> None:
    ranking: SweepRanking = big_sweep["ranking"]
    assert len(ranking.ranked) == len(LIVE)
    assert all(r.valid == 50 for r in ranking.ranked)  # rate-limited models finished too
    known = [big_sweep["biases"][r.model] for r in ranking.ranked]
    rho = spearmanr([r.bias for r in ranking.ranked], known).statistic
    assert rho >= 0.9, rho
    assert [r.rank for r in ranking.ranked] == list(range(1, len(LIVE) + 1))
    assert all(
        a.bias <= b.bias for a, b in zip(ranking.ranked[:-1], ranking.ranked[1:], strict=True)
    )
    pricey = next(r for r in ranking.ranked if r.model == _model_id(PRICEY))
    assert pricey.cost == pytest.approx(50 * 0.0005)
    # At N = 50 the least biased models cannot be told apart (one tie group, ≈p), but the
    # least and the most biased can: several groups, and a bias of 0.1 is within noise.
    first, last = ranking.ranked[0], ranking.ranked[-1]
    assert first.group == ranking.ranked[1].group == 1 and first.unbiased_within_noise
    assert first.ties_next and not last.ties_next
    assert last.group >= 3 and last.bias_low > first.bias_high
    assert all(r.unbiased_within_noise for r in ranking.ranked if r.bias <= 0.1)
    print(f"sweep of 240 models at N=50: {big_sweep['seconds']:.1f} s, Spearman {rho:.3f}")


def test_show_prints_the_tables_writes_json_and_draws_the_dot_plot(
    big_sweep: dict[str, Any],
) -> None:
    from typer.testing import CliRunner  # in-process: the CLI is tested elsewhere as a process

    from flipbench.cli import app

    db, sweep_id = str(big_sweep["db"]), big_sweep["outcome"].sweep_id
    runner = CliRunner()
    shown = runner.invoke(app, ["sweep", "show", sweep_id, "--db", db, "--top", "5"])
    assert shown.exit_code == 0, shown.output
    assert "least biased (5 of 216)" in shown.output and "most biased (5 of 216)" in shown.output
    assert shown.output.count(": skipped; ") == len(DEAD)
    figure = next(line for line in shown.output.splitlines() if line.startswith("figure:"))
    assert Path(figure.split(": ", 1)[1]).stat().st_size > 10_000
    as_json = runner.invoke(app, ["sweep", "show", sweep_id, "--db", db, "--format", "json"])
    data = SweepRanking.model_validate(json.loads(as_json.output))
    assert data == big_sweep["ranking"]
    listed = runner.invoke(app, ["sweep", "list", "--db", db])
    assert sweep_id in listed.output and "complete" in listed.output


def test_a_dry_run_prints_the_plan_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entries, scripts, _ = _catalogue()
    with running_in_thread(FaultConfig(), models=entries, scripts=scripts) as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-sweep-test")
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        dry = flipbench("sweep", "--dry-run", "--n", "20", "--max-cost", "3", "--db",
                        str(tmp_path / "j.db"), cwd=tmp_path)  # fmt: skip
        assert server.counts.get("requests", 0) == 0
    assert dry.returncode == 0, dry.stderr
    assert "models: 240 chosen, 4 left out" in dry.stdout
    assert "plan: 240 models × 1 condition(s) × N=20 = 4,800 calls" in dry.stdout
    assert "budget: --max-cost $3 for the whole sweep" in dry.stdout
    assert "left out lab1/painter: outputs image, not text" in dry.stdout
    assert not (tmp_path / "j.db").exists()


def _small_world(count: int) -> tuple[list[dict[str, Any]], dict[str, ModelScript]]:
    entries = [_entry(_model_id(i)) for i in range(count)]
    scripts = {
        _model_id(i): ModelScript(fatal="404") if i in DEAD else ModelScript(p_one=0.6)
        for i in range(count)
    }
    return entries, scripts


def test_the_budget_stops_the_sweep_within_one_concurrency_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cost, cap, window = 0.001, 0.05, 8
    entries, scripts = _small_world(40)
    db = tmp_path / "j.db"
    with running_in_thread(FaultConfig(cost_per_call=cost, latency_s=0.005), models=entries,
                           scripts=scripts) as server:  # fmt: skip
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-sweep-test")
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        selection, chosen = api.choose_models()
        options = SweepOptions(n=10, max_cost=cap, global_cap=window)
        outcome = api.start_sweep(options, selection, chosen, db)
        billed = server.billed_usd
        print(f"budget ${cap} at ${cost}/call, {window} in flight: billed ${billed:.4f}")
        assert outcome.status == "stopped"
        assert cap <= billed <= cap + window * cost + 1e-9
        ranking = api.sweep_ranking(outcome.sweep_id or "", db)
        assert ranking.spent == pytest.approx(billed)
        with RunLock(db, outcome.sweep_id or ""), pytest.raises(RunLocked, match="another"):
            api.resume_sweep(outcome.sweep_id or "", db, max_cost=1.0)  # being run elsewhere
        # A larger budget finishes it; nothing already journaled is asked again.
        done = api.resume_sweep(outcome.sweep_id or "", db, max_cost=1.0)
        assert done.status == "complete"
        ok = server.counts["ok"]
    final = api.sweep_ranking(outcome.sweep_id or "", db)
    assert all(r.valid == 10 for r in final.ranked) and len(final.ranked) == 36
    assert sum(r.replies for r in final.ranked) == ok


def _journaled(db: Path) -> int:
    """Samples journaled so far, read without creating or writing the file."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0
    finally:
        conn.close()


def test_resume_after_kill_9_finishes_with_nothing_lost_or_duplicated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entries, scripts = _small_world(20)
    db = tmp_path / "j.db"
    with running_in_thread(FaultConfig(latency_s=0.02, cost_per_call=0.0001), models=entries,
                           scripts=scripts) as server:  # fmt: skip
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-sweep-test")
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        env = {k: v for k, v in os.environ.items() if k != "FLIPBENCH_DB"}
        proc = subprocess.Popen(
            [str(FLIPBENCH), "sweep", "--n", "20", "--max-concurrency", "16", "--db", str(db)],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while _journaled(db) < 100 and proc.poll() is None:
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
        sweep_id = next(w for w in stdout.split() if w.startswith("sweep-")).rstrip(":")
        before = _journaled(db)
        assert 100 <= before < 18 * 20, stderr  # killed mid-way
        changed = flipbench("sweep", "--resume", sweep_id, "--n", "5", "--db", str(db),
                            cwd=tmp_path)  # fmt: skip
        assert changed.returncode == 2 and "--n cannot change" in changed.stderr
        resumed = flipbench("sweep", "--resume", sweep_id, "--db", str(db), cwd=tmp_path,
                            timeout=120)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert f"sweep {sweep_id}: complete" in resumed.stdout
        billed = server.counts["billed"]
    ranking = api.sweep_ranking(sweep_id, db)
    assert len(ranking.ranked) == 18 and all(r.valid == 20 for r in ranking.ranked)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        lost = conn.execute("SELECT COUNT(*) FROM in_flight WHERE lost = 1").fetchone()[0]
        dupes = conn.execute(
            "SELECT COUNT(*) FROM (SELECT run_id, condition, sample_index FROM samples"
            " GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    assert dupes == 0
    assert rows == 18 * 20  # every valid answer once; no extra samples
    # Every reply the server sent is journaled or among the calls counted lost in flight (a
    # call marked in flight may also have died before the server saw it: counted, not billed).
    assert rows <= billed <= rows + lost


def test_the_bias_interval_covers_the_true_bias_at_least_95_percent() -> None:
    rng = random.Random(3)
    for p in (0.5, 0.55, 0.7, 0.95):
        hits = 0
        for _ in range(2000):
            k = sum(rng.random() < p for _ in range(30))
            low, high = bias_interval(*wilson_interval(k, 30), 0.5)
            hits += low <= abs(p - 0.5) <= high
        assert hits / 2000 >= 0.93, (p, hits)
