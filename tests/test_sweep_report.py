"""`flipbench report SWEEP_ID`: the sweep's ranking, dot plot, unranked models (with reasons)
and the regression section, in one self-contained page checked as text and in headless Chromium.

A small sweep (18 models on the loopback fault server, two dead with 404, one whose catalogue id
is a markup payload) is run in-process through the sweep API; the report is written by the
console script, as a user would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import offline_page
from cli_helpers import assert_ok, flipbench

from flipbench.sweep import api
from flipbench.sweep.runner import SweepOptions
from flipbench.testing.fault_server import FaultConfig, ModelScript, running_in_thread

HOSTILE = "evil/<img src=x onerror=window.__pwned=1>"
DEAD = ("lab1/dead-a", "lab2/dead-b")
LIVE = {f"lab{i % 3}/m-{i:02d}": 0.5 + 0.03 * i * (-1) ** i for i in range(15)}


def _entry(model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
        "supported_parameters": ["temperature", "max_tokens"],
        "architecture": {"output_modalities": ["text"]},
    }


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("sweep-report")
    db = folder / "j.db"
    models = [*LIVE, *DEAD, HOSTILE]
    scripts = {m: ModelScript(p_one=p) for m, p in LIVE.items()}
    scripts.update({m: ModelScript(fatal="404") for m in DEAD})
    cfg = FaultConfig(cost_per_call=0.00001)
    served = running_in_thread(cfg, models=[_entry(m) for m in models], scripts=scripts)
    with served as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENROUTER_API_KEY", "sk-or-v1-sweep-report-test")
        mp.setenv("OPENROUTER_BASE_URL", server.base_url)
        selection, entries = api.choose_models()
        outcome = api.start_sweep(SweepOptions(n=30), selection, entries, db)
        ranking = api.sweep_ranking(outcome.sweep_id or "", db)
    out = folder / "sweep.html"  # the report needs no key and no server
    sweep_id = outcome.sweep_id or ""
    proc = flipbench("report", sweep_id, "--db", str(db), "--out", str(out), cwd=folder)
    assert_ok(proc)
    yield {
        "html": out, "ranking": ranking, "sweep_id": sweep_id, "stdout": proc.stdout, "db": db,
    }  # fmt: skip


def test_the_page_holds_the_ranking_the_dot_plot_and_the_unranked_models(
    sweep_report: dict[str, Any],
) -> None:
    html = sweep_report["html"].read_text()
    ranking = sweep_report["ranking"]
    assert str(sweep_report["html"]) in sweep_report["stdout"]
    # the payload-named model is served too (the catalogue lists it): ranked, shown as text
    assert len(ranking.ranked) == len(LIVE) + 1 and len(ranking.unranked) == len(DEAD)
    ranked_table = html.split('class="sweep-ranking"', 1)[1].split("</table>", 1)[0]
    assert ranked_table.count("<tr>") == len(LIVE) + 2  # the head and one row per model
    order = [m.model for m in ranking.ranked if m.model != HOSTILE]  # least biased first
    positions = [ranked_table.index(f">{m}<") for m in order]
    assert positions == sorted(positions)
    unranked = html.split('class="sweep-unranked"', 1)[1].split("</table>", 1)[0]
    for model in DEAD:
        assert model in unranked
    assert unranked.count(">skipped<") == len(DEAD) and "HTTP 404" in unranked
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', html)
    assert "Regression on model covariates" in html and "logit-normal mixed model" in html
    effects = html.split('class="sweep-effects"', 1)[1].split("</table>", 1)[0]
    assert "intercept (P(1))" in effects and effects.count("<tr>") >= 3  # head, β₀, σ …
    figures = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', html)
    assert len(figures) == 2  # the dot plot and the effect plot
    assert HOSTILE not in html and "&lt;img src=x onerror" in html
    assert html.count("<script") == 1
    assert "http://" not in html and "https://" not in html


def test_a_report_of_an_unknown_id_names_what_it_looked_for(
    sweep_report: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "nope.html"
    proc = flipbench("report", "sweep-nope", "--db", str(sweep_report["db"]), "--out", str(out),
                     cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: no run, benchmark or sweep 'sweep-nope'")
    assert "flipbench sweep list" in proc.stderr and not out.exists()


def test_the_sweep_report_renders_in_chromium_with_no_payload_run(
    sweep_report: dict[str, Any], tmp_path: Path
) -> None:
    with offline_page(Path(sweep_report["html"])) as (page, requests):
        shot = Path(os.environ.get("FLIPBENCH_SWEEP_SCREENSHOT") or tmp_path / "sweep.png")
        page.screenshot(path=str(shot), full_page=False)
        dom: dict[str, Any] = page.evaluate(
            """() => ({
            pwned: window.__pwned === undefined ? null : String(window.__pwned),
            widths: Array.from(document.images).map(i => i.naturalWidth),
            rows: document.querySelectorAll('table.sweep-ranking tbody tr').length,
            ranked: document.querySelector('table.sweep-ranking').innerText,
            title: document.title,
        })"""
        )
    assert dom["pwned"] is None
    assert requests == [Path(sweep_report["html"]).resolve().as_uri()], requests
    assert dom["widths"] and all(w > 0 for w in dom["widths"]), dom["widths"]
    assert dom["rows"] == len(LIVE) + 1
    assert HOSTILE in dom["ranked"]  # shown to the reader as text
    assert sweep_report["sweep_id"] in dom["title"]
    assert shot.stat().st_size > 10_000
