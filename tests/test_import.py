"""The Failure to Mix importer against the real released files: counts, repairs, S and x."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flipbench.errors import FlipbenchError
from flipbench.importers import ImportReport, import_failure_to_mix
from flipbench.importers.failure_to_mix import EXPECTED_FILES
from flipbench.importers.ftm_rows import DATE_REPAIR, MOJIBAKE
from flipbench.metrics import step_likeness
from flipbench.results import RunResults, compute_results
from flipbench.store import Journal
from flipbench.tasks.words import PAIRS
from tests.paper_data import DATA

RED = {frozenset((r, o)): (r, o) for r, o in PAIRS}


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, dtype=str, keep_default_na=False)


def _slug(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def _pct(text: str) -> str:
    return format(Decimal(text).normalize(), "f")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImportReport]:
    assert DATA.is_dir(), f"released data missing: {DATA}"  # ships with every checkout
    db = tmp_path_factory.mktemp("ftm") / "journal.db"
    return db, import_failure_to_mix(DATA, db)


class Results:
    """`show`'s numbers of an imported run, computed once, on first use."""

    def __init__(self, db: Path, run_ids: list[str]) -> None:
        self.db, self.run_ids, self._done = db, run_ids, dict[str, RunResults]()

    def __getitem__(self, run_id: str) -> RunResults:
        if run_id not in self._done:
            with Journal(self.db, create=False) as journal:
                self._done[run_id] = compute_results(journal, run_id)
        return self._done[run_id]

    def items(self) -> list[tuple[str, RunResults]]:
        return [(run_id, self[run_id]) for run_id in self.run_ids]


@pytest.fixture(scope="module")
def results(imported: tuple[Path, ImportReport]) -> Results:
    db, report = imported
    return Results(db, [r.run_id for r in report.runs])


def _rows(db: Path, run_id: str) -> list[dict[str, object]]:
    with Journal(db, create=False) as journal:
        return [dict(r) for r in journal.samples(run_id)]


def test_one_complete_run_per_figure_and_model(imported: tuple[Path, ImportReport]) -> None:
    db, report = imported
    with Journal(db, create=False) as journal:
        runs = {r.run_id: r for r in journal.list_runs()}
    assert set(runs) == {r.run_id for r in report.runs}
    assert len(runs) == 1 + 3 + 3 + 5 + 5 + 5 * 4  # the business game: two releases
    fig1 = runs["ftm-fig1-claude-4.5-sonnet"]
    assert (fig1.experiment, fig1.model, fig1.mode, fig1.status) == (
        "single-flip", "paper/claude-4.5-sonnet", "sample", "complete",
    )  # fmt: skip
    assert runs["ftm-fig6-business-kimi-k2-0905"].experiment == "business"
    for run in runs.values():
        assert run.status == "complete" and run.mode == "sample"
        assert run.model.startswith("paper/")
        imported_from = run.versions["imported"]
        assert imported_from["licence"] == "MIT"
        assert imported_from["arxiv"] == "2511.14630"
        for f in imported_from["files"]:
            assert f["sha256"] == hashlib.sha256((DATA / f["name"]).read_bytes()).hexdigest()
        assert run.message is not None and "\n" not in run.message
        assert "arXiv 2511.14630" in run.message
    assert runs["ftm-fig2-kimi-k2-0905"].definition["params"]["D"] == "2"
    assert runs["ftm-fig3-kimi-k2-0905"].definition["grid"] == "fig3"
    assert runs["ftm-fig3-kimi-k2-0905"].definition["params"]["D"] == "10"


def test_every_row_is_read_and_accounted_for(imported: tuple[Path, ImportReport]) -> None:
    db, report = imported
    total = sum(len(_csv(name)) for name in EXPECTED_FILES)
    assert sum(r.rows_read for r in report.runs) == total
    for r in report.runs:
        assert r.rows_read == r.valid + r.invalid + r.dropped.total()
        rows = _rows(db, r.run_id)
        assert len(rows) == r.valid + r.invalid
        assert sum(bool(row["valid"]) for row in rows) == r.valid
        by_condition: dict[str, list[int]] = {}
        for row in rows:
            meta = json.loads(str(row["meta_json"]))
            assert meta["source"] in r.sources and meta["line"] >= 2
            by_condition.setdefault(str(row["condition"]), []).append(int(str(row["sample_index"])))
        for indices in by_condition.values():
            assert indices == list(range(len(indices)))


def test_fig1_claude_s_is_the_paper_value(results: Results) -> None:
    res = results["ftm-fig1-claude-4.5-sonnet"]
    df = _csv("fig1_single_flip.csv")
    r = (df["answer"].astype(float) == 1.0).groupby(df["p"].astype(float) / 100).mean()
    assert res.s == pytest.approx(step_likeness(r.index.to_numpy(), r.to_numpy()), abs=1e-12)
    assert res.s == pytest.approx(0.998, abs=1e-9)
    assert [c.n_total for c in res.conditions] == [100] * 21


def test_fig2_spreadsheet_dates_are_repaired(
    imported: tuple[Path, ImportReport], results: Results
) -> None:
    db, report = imported
    fig2 = [r for r in report.runs if r.run_id.startswith("ftm-fig2-")]
    assert sum(r.repaired[DATE_REPAIR] for r in fig2) == 1293
    said = [line.split(":")[0].split() for line in report.lines() if DATE_REPAIR in line]
    assert sum(int(words[1]) for words in said if words[0] == "repaired") == 1293
    repaired = 0
    for r in fig2:
        for row in _rows(db, r.run_id):
            meta = json.loads(str(row["meta_json"]))
            if DATE_REPAIR in meta.get("repairs", []):
                repaired += 1
                assert (row["content"], row["answer"]) == ("1 1", "1 1")
                assert meta["released_raw_text"] == "2025-01-01 00:00:00"
            assert row["content"] != "2025-01-01 00:00:00"
    assert repaired == 1293
    # Kimi's replies with a preamble are invalid for our strict D-token parser, text kept.
    kimi = report.run("ftm-fig2-kimi-k2-0905")
    assert (kimi.invalid, kimi.flagged[MOJIBAKE]) == (14, 3)
    assert math.isfinite(results["ftm-fig2-kimi-k2-0905"].s)


def _sizes(name: str, *columns: str) -> list[tuple[tuple[str, ...], int]]:
    """Rows per (model, *columns) of a released file."""
    sizes = _csv(name).groupby(["model", *columns]).size()
    return [(tuple(str(k) for k in key), int(n)) for key, n in sizes.items()]


def _expected_counts() -> Counter[tuple[str, str]]:
    """(run id, condition key) → rows, straight from the CSVs (the one-row stray dropped)."""
    out: Counter[tuple[str, str]] = Counter()
    for fig, names, prefix in (
        ("fig1", ["fig1_single_flip.csv"], "p"),
        ("fig2", ["fig2_sequential_flips.csv"], "p"),
        ("fig3", ["fig3_d10_flips.csv", "fig3_d10_flips_claude.csv"], "p"),
        ("fig4", ["fig4_ternary.csv"], "q"),
    ):
        for name in names:
            for (model, p), n in _sizes(name, "p"):
                out[(f"ftm-{fig}-{_slug(model)}", f"{prefix}={_pct(p)}")] += n
    for (model, v, v2, p), n in _sizes("fig5_word_bias.csv", "v", "v2", "p"):
        red, other = RED[frozenset((v.lower(), v2.lower()))]
        order = "forward" if v.lower() == red else "reverse"
        key = f"{red}/{other}:{order}{'' if p == '50' else f':p={p}'}"
        out[(f"ftm-fig5-{_slug(model)}", key)] += n
    for (model, b), n in _sizes("fig6_bioinformatics.csv", "b_count"):
        out[(f"ftm-fig6-bioinformatics-{_slug(model)}", f"b={b}")] += n
    for (model, hh), n in _sizes("fig6_matching_pennies.csv", "payoff_ratio"):
        out[(f"ftm-fig6-matching-pennies-{_slug(model)}", f"hh={Decimal(hh):.2f}")] += n
    for name, label in (("fig6_business.csv", "business"),
                        ("fig6_business_extended.csv", "business-extended")):  # fmt: skip
        for (model, a), n in _sizes(name, "affordable_payoff"):
            out[(f"ftm-fig6-{label}-{_slug(model)}", f"affordable={_pct(a)}M")] += n
    del out[("ftm-fig6-business-extended-gemini-2.5-pro", "affordable=1000M")]
    return out


def test_per_condition_n_matches_the_csv_counts(
    imported: tuple[Path, ImportReport], results: Results
) -> None:
    db, report = imported
    with Journal(db, create=False) as journal:
        stored = {r.run_id: journal.condition_counts(r.run_id) for r in report.runs}
    got = Counter({(rid, key): n[1] for rid, counts in stored.items() for key, n in counts.items()})
    assert got == _expected_counts()
    assert stored["ftm-fig6-business-extended-gpt-5"]["affordable=1M"][1] == 28  # uneven N
    # show's N is the same: every stored row lands in a condition of the definition.
    fig2 = results["ftm-fig2-claude-4.5-sonnet"]
    assert {c.condition: c.n_total for c in fig2.conditions} == {
        key: n[1] for key, n in stored[fig2.run.run_id].items()
    }
    assert fig2.conditions[-2].n_total == 200  # p = 85


def test_each_business_release_is_its_own_run_and_the_stray_is_dropped(
    imported: tuple[Path, ImportReport],
) -> None:
    """Merged, the two releases (different grids, different sessions) made one zig-zag curve."""
    _, report = imported
    for model in (
        "claude-4.5-sonnet",
        "gemini-2.5-pro",
        "gpt-5",
        "kimi-k2-0905",
        "qwen3-vl-8b-instruct",
    ):
        assert report.run(f"ftm-fig6-business-{model}").sources == ("fig6_business.csv",)
        extended = report.run(f"ftm-fig6-business-extended-{model}")
        assert extended.sources == ("fig6_business_extended.csv",)
        assert extended.conditions == 7  # the spec's 7-point grid
    assert report.run("ftm-fig6-business-gemini-2.5-pro").dropped.total() == 0
    assert report.run("ftm-fig6-business-extended-gemini-2.5-pro").dropped.total() == 1
    assert any(line.strip().startswith("dropped 1: stray condition") for line in report.lines())


def test_word_bias_has_both_orders_where_the_data_has_them(
    imported: tuple[Path, ImportReport], results: Results
) -> None:
    db, _ = imported
    df = _csv("fig5_word_bias.csv")
    for model, rows in df.groupby("model"):
        res = results[f"ftm-fig5-{_slug(model)}"]
        present = {(c.group, c.value) for c in res.experiment.conditions()}
        for red, other in PAIRS:
            words = {red, other}
            orders = {
                "forward" if v.lower() == red else "reverse"
                for v, v2, p in zip(rows["v"], rows["v2"], rows["p"], strict=True)
                if {v.lower(), v2.lower()} == words and p == "50"
            }
            at_half = {o for g, o in present if g == f"{red}/{other}" and ":" not in o}
            assert at_half == orders
            pairs = {p["pair"]: p for p in res.metrics.to_json()["words"]["pairs"]}
            if len(orders) == 2:  # both orders: the red-word share of this pair is measurable
                assert math.isfinite(pairs[f"{red}/{other}"]["red_share"]["value"])
    claude = results["ftm-fig5-claude-4.5-sonnet"]
    assert len(claude.conditions) == 22 and all(c.n_total >= 100 for c in claude.conditions)
    assert len(results["ftm-fig5-gemini-2.5-pro"].conditions) == 17  # 11 at p = 50, 6 at p = 49
    answers = {c.key: c.answers for c in claude.experiment.conditions()}
    for row in _rows(db, "ftm-fig5-claude-4.5-sonnet"):
        if row["valid"]:
            assert row["answer"] in answers[str(row["condition"])]
    # The authors' answer column is case-sensitive: Gemini's "Day" for the night/day pair
    # counted as "night". The reply text is what is imported; the difference is noted.
    noted = [
        r for r in _rows(db, "ftm-fig5-gemini-2.5-pro")
        if any("disagrees" in note for note in json.loads(str(r["meta_json"])).get("notes", []))
    ]  # fmt: skip
    assert len(noted) == 24
    assert all(
        str(r["content"])[0].isupper() and str(r["answer"]) == str(r["content"]).lower()
        for r in noted
    )


def test_game_x_values_come_from_the_exact_numbers(results: Results) -> None:
    def xs(run_id: str) -> dict[str, float]:
        return {c.condition: c.p for c in results[run_id].conditions}

    bio = xs("ftm-fig6-bioinformatics-kimi-k2-0905")
    assert bio["b=510"] == pytest.approx(1000 / 1510) and round(bio["b=510"], 3) == 0.662
    assert xs("ftm-fig6-bioinformatics-gpt-5")["b=1019"] == pytest.approx(1000 / 2019)
    pennies = xs("ftm-fig6-matching-pennies-claude-4.5-sonnet")
    assert pennies["hh=1.02"] == pytest.approx(1 / 2.02) and round(pennies["hh=1.02"], 3) == 0.495
    assert pennies["hh=0.98"] == pytest.approx(1 / 1.98) and round(pennies["hh=0.98"], 3) == 0.505
    business = xs("ftm-fig6-business-qwen3-vl-8b-instruct")
    assert round(business["affordable=7M"], 3) == 0.412
    assert round(business["affordable=13M"], 3) == 0.565
    # S of the imported run equals S recomputed from the CSV with x from the counts.
    df = _csv("fig6_bioinformatics.csv")
    df = df[df["model"] == "moonshotai/kimi-k2-0905"]
    x = 1000 / (1000 + df["b_count"].astype(float))
    r = (df["answer"] == "1").groupby(x).mean()
    s = step_likeness(r.index.to_numpy(), r.to_numpy())
    assert results["ftm-fig6-bioinformatics-kimi-k2-0905"].s == pytest.approx(s, abs=1e-12)


def test_show_results_compute_for_every_run(
    imported: tuple[Path, ImportReport], results: Results
) -> None:
    db, report = imported
    with Journal(db, create=False) as journal:
        stored = {r.run_id: journal.condition_counts(r.run_id) for r in report.runs}
    for run_id, res in results.items():
        json.dumps(res.to_dict(), allow_nan=False)
        assert {c.condition: c.n_total for c in res.conditions} == {
            key: n[1] for key, n in stored[run_id].items()
        }
        if res.experiment.kind in ("flip", "d-flips", "game"):
            assert math.isfinite(res.s), run_id
            assert all(math.isfinite(v) for v in res.s_ci), run_id
        elif res.experiment.kind == "ternary":
            areas = res.metrics.to_json()["areas"]
            assert all(math.isfinite(areas[k]["value"]) for k in ("S0", "S1", "S2")), run_id
        else:
            assert res.experiment.kind == "word-pair"
            assert math.isfinite(res.metrics.to_json()["bias"]["avg_pos_bias"]["value"]), run_id


def test_invalid_rows_keep_their_text_and_a_category(imported: tuple[Path, ImportReport]) -> None:
    db, report = imported
    kimi = _rows(db, "ftm-fig3-kimi-k2-0905")
    invalid = [r for r in kimi if not r["valid"]]
    assert len(invalid) == 42
    assert Counter(r["invalid_category"] for r in invalid) == {"unparseable": 40, "wrong_count": 2}
    assert all(r["content"] and r["answer"] is None for r in invalid)
    gpt = report.run("ftm-fig4-gpt-5")
    assert (gpt.invalid, gpt.invalid_by_category["unparseable"]) == (3, 3)
    # A released prompt travels with its sample; elsewhere our rendering, marked as such.
    released = _csv("fig4_ternary.csv")["prompt"]
    for row in _rows(db, "ftm-fig4-gpt-5"):
        request = json.loads(str(row["request_json"]))
        line = json.loads(str(row["meta_json"]))["line"]
        assert request["prompt_source"] == "released"
        assert request["messages"][0]["content"] == released.iloc[line - 2]
    fig1 = json.loads(str(_rows(db, "ftm-fig1-claude-4.5-sonnet")[0]["request_json"]))
    assert fig1["prompt_source"] == "reconstructed"


def test_meta_line_is_where_the_record_starts(imported: tuple[Path, ImportReport]) -> None:
    db, _ = imported
    lines = (DATA / "fig2_sequential_flips.csv").read_text(encoding="utf-8").splitlines()
    multi = 0
    for row in _rows(db, "ftm-fig2-kimi-k2-0905"):
        meta = json.loads(str(row["meta_json"]))
        assert lines[meta["line"] - 1].startswith("moonshotai/kimi-k2-0905,")
        multi += "\n" in str(row["content"])
    assert multi > 0  # replies spanning several lines did not shift the line numbers


def test_importing_twice_refuses_and_writes_nothing(imported: tuple[Path, ImportReport]) -> None:
    db, _ = imported
    with Journal(db, create=False) as journal:
        before = sum(1 for r in journal.list_runs() for _ in journal.samples(r.run_id))
    with pytest.raises(FlipbenchError, match="already holds 37 imported run"):
        import_failure_to_mix(DATA, db)
    with Journal(db, create=False) as journal:
        after = sum(1 for r in journal.list_runs() for _ in journal.samples(r.run_id))
    assert after == before


def test_missing_or_incomplete_directory_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    with pytest.raises(FlipbenchError, match="is not a directory"):
        import_failure_to_mix(tmp_path / "absent", db)
    with pytest.raises(FlipbenchError, match="lacks 10 of the 10 Failure to Mix files"):
        import_failure_to_mix(tmp_path, db)
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(DATA / "fig1_single_flip.csv", partial)
    with pytest.raises(FlipbenchError, match=r"fig2_sequential_flips\.csv"):
        import_failure_to_mix(partial, db)
    assert not db.exists()


def test_a_file_without_the_expected_columns_is_refused(tmp_path: Path) -> None:
    for name in EXPECTED_FILES:
        shutil.copy(DATA / name, tmp_path)
    (tmp_path / "fig4_ternary.csv").write_text("model,p\nx,1\n", encoding="utf-8")
    with pytest.raises(FlipbenchError, match=r"fig4_ternary\.csv lacks column"):
        import_failure_to_mix(tmp_path, tmp_path / "j.db")
    assert not (tmp_path / "j.db").exists()


def test_cli_import_prints_every_runs_metrics_and_draws_the_papers_figures(
    tmp_path: Path,
) -> None:
    from cli_helpers import RUN_TIMEOUT, assert_ok, assert_one_line_error, flipbench

    # No folder given: the copy of the released data that ships inside the package.
    proc = flipbench("import", "failure-to-mix", "--db", "j.db", cwd=tmp_path,
                     timeout=RUN_TIMEOUT)  # fmt: skip
    assert_ok(proc)
    assert "ftm-fig1-claude-4.5-sonnet" in proc.stdout and "0.998" in proc.stdout
    lines = proc.stdout.splitlines()
    figures = [Path(x.removeprefix("figure: ")).name for x in lines if x.startswith("figure: ")]
    for stem in (
        "ftm-fig1",
        "ftm-fig2",
        "ftm-fig3_count_histograms",
        "ftm-fig4",
        "ftm-fig5",
        "ftm-fig6-bioinformatics",
        "ftm-fig6-matching-pennies",
        "ftm-fig6-business",
        "ftm-fig6-business-extended",
    ):
        assert f"{stem}.png" in figures, figures
        assert (tmp_path / "flipbench-runs/figures" / f"{stem}.svg").is_file()
    shown = flipbench("show", "ftm-fig5-claude-4.5-sonnet", "--format", "json", "--db", "j.db",
                      cwd=tmp_path)  # fmt: skip
    assert_ok(shown)
    metrics = json.loads(shown.stdout)["metrics"]
    pos = metrics["bias"]["avg_pos_bias"]
    assert pos["value"] == pytest.approx(0.383, abs=5e-4) and pos["low"] < pos["value"]
    again = flipbench("import", "failure-to-mix", str(DATA), "--db", "j.db", cwd=tmp_path)
    assert "already holds" in assert_one_line_error(again)


GOLDEN = Path(__file__).parent / "golden" / "paper_show.json"
# What varies from machine to machine or import to import, not a number `show` computes.
_VOLATILE = ("created_at", "versions", "status")


def _show_numbers(results: Results) -> dict[str, Any]:
    views = {}
    for run_id, res in results.items():
        view = {k: v for k, v in res.to_dict().items() if k not in _VOLATILE}
        views[run_id] = json.loads(json.dumps(view, allow_nan=False, sort_keys=True))
    return views


def test_show_numbers_of_the_paper_runs_are_unchanged(results: Results) -> None:
    """Every number `show --format json` gives for the 37 imported runs, against a golden file
    written before the restructuring (issue 10). A deliberate change of a metric rewrites it:
    `FLIPBENCH_UPDATE_GOLDEN=1 pytest tests/test_import.py -k unchanged`."""
    now = _show_numbers(results)
    if os.environ.get("FLIPBENCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert sorted(now) == sorted(golden) and len(now) == 37
    for run_id in golden:
        _assert_holds(golden[run_id], now[run_id], run_id)


def _assert_holds(golden: Any, now: Any, where: str) -> None:
    """Every value of the golden file is still there and equal (floats to 1e-12, relative:
    the last bit may move when an equal number is computed another way); values added since
    are allowed — new metrics do not change the old ones."""
    if isinstance(golden, dict):
        assert isinstance(now, dict), where
        for key, value in golden.items():
            assert key in now, f"{where}.{key} is gone"
            _assert_holds(value, now[key], f"{where}.{key}")
    elif isinstance(golden, list):
        assert isinstance(now, list) and len(now) == len(golden), where
        for i, (g, n) in enumerate(zip(golden, now, strict=True)):
            _assert_holds(g, n, f"{where}[{i}]")
    elif isinstance(golden, float) and not isinstance(now, bool) and isinstance(now, int | float):
        assert now == pytest.approx(golden, rel=1e-12, abs=1e-15), where
    else:
        assert now == golden, where


def test_an_s_that_is_mostly_extrapolation_is_flagged(results: Results) -> None:
    """Fig. 3 has p = 15 % and 45 % only: 70 % of S is r held flat beyond them."""
    from flipbench.cli.output import extrapolation_note
    from flipbench.figures.figure import run_title

    fig3 = results["ftm-fig3-kimi-k2-0905"]
    assert fig3.s_extrapolated_share == pytest.approx(0.70) and fig3.mostly_extrapolated
    assert fig3.to_dict()["S_extrapolated_share"] == pytest.approx(0.70)
    assert "70% of [0, 1]" in extrapolation_note(fig3) and "15%–45%" in extrapolation_note(fig3)
    assert run_title(fig3).endswith("S 70% extrapolated")
    fig1 = results["ftm-fig1-claude-4.5-sonnet"]
    assert fig1.s_extrapolated_share == 0.0 and not fig1.mostly_extrapolated
    assert "extrapolated" not in run_title(fig1)
