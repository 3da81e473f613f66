"""Exact mode over an API sees only the top 20 tokens: an answer it hides is censored, never 0.

The bounds (providers/censoring.py) are checked by hand on small cases, then against every
configuration of the unknowns drawn at random; the loopback runs go through the fault server,
whose top_logprobs lists leave answers out (or list a token two answers share).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import RUN_TIMEOUT, assert_ok, flipbench
from fault_helpers import BODY, one

from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.metrics import step_likeness, step_likeness_bounds
from flipbench.providers.base import Reply, exact_distribution
from flipbench.providers.censoring import Censoring, SharedToken
from flipbench.providers.openai_api import OpenRouterBackend
from flipbench.providers.replies import answer_logprobs, read_exact, top_censoring
from flipbench.store import Journal
from flipbench.tasks import EXPERIMENTS
from flipbench.tasks.definition import ConditionSpec, ExperimentDefinition
from flipbench.testing.fault_server import FaultConfig, running_in_thread

KEY = "sk-or-v1-dummy0123456789abcdef-censored"


def _reply(candidates: list[tuple[str, float]]) -> dict[str, Any]:
    """A chat reply whose first token lists these (token, probability) candidates."""
    top = [{"token": t, "logprob": math.log(p)} for t, p in candidates]
    first = {"token": candidates[0][0], "logprob": math.log(candidates[0][1]), "top_logprobs": top}
    message = {"role": "assistant", "content": candidates[0][0]}
    return {"choices": [{"message": message, "logprobs": {"content": [first]}}]}


def _censoring(candidates: list[tuple[str, float]], answers: tuple[str, ...]) -> Censoring:
    found = top_censoring(_reply(candidates), answers, 20)
    assert found is not None
    return found


TOP20_MISSING_0 = [("1", 0.6), *((f"tok{i}", 0.02) for i in range(19))]


def test_a_missing_answer_is_bounded_by_the_kth_probability() -> None:
    c = _censoring(TOP20_MISSING_0, ("0", "1"))
    assert c.missing == ("0",) and c.shared == () and c.listed == 20
    assert math.exp(c.kth_logprob) == pytest.approx(0.02)
    # T = 1: "0" holds at most p_k = 0.02, so r("1") ∈ [0.6 / 0.62, 1], r("0") ∈ [0, 0.02 / 0.62]
    bounds = c.bounds(1.0)
    assert bounds["1"] == pytest.approx((0.6 / 0.62, 1.0))
    assert bounds["0"] == pytest.approx((0.0, 0.02 / 0.62))
    # T = 0.5: weights p², so r("1") ≥ 0.36 / (0.36 + 0.0004)
    assert c.bounds(0.5)["1"] == pytest.approx((0.36 / 0.3604, 1.0))
    # T = 0: "0" cannot pass "1" (0.02 < 0.6): the point is exact, nothing is censored
    assert c.bounds(0.0) == {"0": (0.0, 0.0), "1": (1.0, 1.0)}
    assert c.report({"0": 0.0, "1": 1.0}, 0.0) is None
    report = c.report({"0": 0.0, "1": 1.0}, 1.0)
    assert report is not None
    assert report["missing"] == ["0"] and report["kth_prob"] == pytest.approx(0.02)
    assert report["point"] == {"0": 0.0, "1": 1.0}  # what a silent 0 would have shown
    assert report["bounds"]["0"] == pytest.approx([0.0, 0.02 / 0.62])


def test_two_missing_answers_and_an_answer_at_the_kth_place() -> None:
    # Three answers, only "A" listed (0.5); the 20th candidate has 0.1: B and C hold ≤ 0.1 each.
    c = _censoring([("A", 0.5), *((f"t{i}", 0.1) for i in range(19))], ("A", "B", "C"))
    assert c.missing == ("B", "C")
    bounds = c.bounds(1.0)
    assert bounds["A"] == pytest.approx((0.5 / 0.7, 1.0))
    assert bounds["B"] == pytest.approx((0.0, 0.1 / 0.6)) == bounds["C"]
    # The listed answer is itself the last candidate: the missing one may tie it at T = 0.
    tie = _censoring([("x", 0.7), ("1", 0.3)], ("0", "1"))
    assert tie.bounds(0.0) == {"1": (0.5, 1.0), "0": (0.0, 0.5)}
    assert tie.bounds(1.0)["1"] == pytest.approx((0.5, 1.0))


def test_a_first_token_two_answers_share_is_censored() -> None:
    # "3" may begin "37" or "30": its 0.5 goes to either, or to neither; "37" has 0.2 of its own.
    c = _censoring([("3", 0.5), ("37", 0.2), ("x", 0.1)], ("37", "30"))
    assert c.shared == (SharedToken("3", math.log(0.5), ("37", "30")),) and c.missing == ()
    bounds = c.bounds(1.0)
    assert bounds["37"] == pytest.approx((0.2 / 0.7, 1.0))
    assert bounds["30"] == pytest.approx((0.0, 0.5 / 0.7))
    assert c.bounds(0.0) == {"37": (0.0, 1.0), "30": (0.0, 1.0)}  # "3" leads: either may win
    # The point reading dropped "3" (a prefix of two answers) and showed r("37") = 1.
    found, missing = answer_logprobs(_reply([("3", 0.5), ("37", 0.2)]), ["37", "30"])
    assert found == {"37": [math.log(0.2)], "30": []} and missing == {"30"}
    # A token that is one answer and begins another ("1" of "1" and "10", digits split).
    d = _censoring([("1", 0.4), ("10", 0.3)], ("1", "10"))
    assert [s.answers for s in d.shared] == [("1", "10")]
    assert d.bounds(1.0)["1"] == pytest.approx((0.0, 0.4 / 0.7))
    assert d.bounds(1.0)["10"] == pytest.approx((0.3 / 0.7, 1.0))


def test_no_answer_in_the_list_is_censored_to_zero_one_not_unparseable() -> None:
    c = _censoring([("Sure", 0.9), *((f"t{i}", 0.005) for i in range(19))], ("cat", "dog"))
    for temperature in (0.0, 0.5, 1.0, 2.0):
        assert c.bounds(temperature) == {"cat": (0.0, 1.0), "dog": (0.0, 1.0)}
    report = c.report({"cat": math.nan, "dog": math.nan}, 1.0)
    assert report is not None and report["point"] == {"cat": None, "dog": None}
    json.dumps(report, allow_nan=False)  # strict JSON: the journal keeps it as is


def test_every_listed_answer_is_not_censored_and_local_readings_are_unchanged() -> None:
    both = Reply(request={}, response=_reply([("1", 0.6), ("0", 0.3)]), ok=True)
    assert read_exact(both, ["0", "1"], 20).censoring is None
    hidden = Reply(request={}, response=_reply(TOP20_MISSING_0), ok=True)
    read = read_exact(hidden, ["0", "1"], 20)
    assert read.censoring is not None and read.censoring.missing == ("0",)
    assert read.meta["answers_below_top_logprobs"] == ["0"]
    assert read.answer_logprobs == {"0": [], "1": [math.log(0.6)]}  # the point, as before
    nothing = Reply(request={}, response={"choices": [{"logprobs": {"content": []}}]}, ok=True)
    assert top_censoring(nothing.response, ["0", "1"], 20) is None


def _true_rate(
    c: Censoring, temperature: float, rng: random.Random, answers: tuple[str, ...]
) -> dict[str, float] | None:
    """The rates of one configuration the list is consistent with: each missing answer one
    token of probability ≤ p_k, each shared token given to one of its answers or to none."""
    tokens: dict[str, list[float]] = {a: list(c.unique[a]) for a in answers}
    for s in c.shared:
        owner = rng.choice([*s.answers, None])
        if owner is not None:
            tokens[owner].append(s.logprob)
    for a in c.missing:
        if rng.random() < 0.8:
            p = rng.choice([math.exp(c.kth_logprob), rng.random() * math.exp(c.kth_logprob)])
            tokens[a].append(math.log(p) if p > 0 else -math.inf)
    if temperature > 0 and not any(math.isfinite(lp) for lps in tokens.values() for lp in lps):
        return None
    if not any(tokens.values()):
        return None
    finite = {a: [lp for lp in lps if math.isfinite(lp)] for a, lps in tokens.items()}
    rates = exact_distribution(finite, temperature).renormalised
    return None if any(math.isnan(r) for r in rates.values()) else rates


@pytest.mark.parametrize("temperature", [0.0, 0.3, 1.0, 2.0])
def test_bounds_hold_every_configuration_the_list_allows(temperature: float) -> None:
    rng = random.Random(11)
    answers = ("a1", "a2", "a3")
    for _ in range(300):
        lps = [math.log(rng.choice([rng.random(), 0.05, 0.2])) for _ in range(6)]
        kth = min(lps)
        unique = {a: tuple(lp for lp in lps[:4] if rng.random() < 0.3) for a in answers}
        shared = tuple(
            SharedToken("s", lp, tuple(rng.sample(answers, 2)))
            for lp in lps[4:]
            if rng.random() < 0.5
        )
        covered = {a for s in shared for a in s.answers}
        missing = tuple(a for a in answers if not unique[a] and a not in covered)
        c = Censoring(unique, shared, missing, kth, 20, 6)
        bounds = c.bounds(temperature)
        point = exact_distribution({a: list(v) for a, v in unique.items()}, temperature)
        for a, (low, high) in bounds.items():
            assert 0.0 <= low <= high <= 1.0
            if not math.isnan(point.renormalised[a]) and not shared:
                assert low - 1e-9 <= point.renormalised[a] <= high + 1e-9
        for _ in range(20):
            rates = _true_rate(c, temperature, rng, answers)
            for a, r in (rates or {}).items():
                low, high = bounds[a]
                assert low - 1e-9 <= r <= high + 1e-9, (c, temperature, rates, bounds)


def test_fault_server_top_lists_omit_cap_fill_and_extra() -> None:
    body = {**BODY, "logprobs": True, "top_logprobs": 20}

    def listed(**options: Any) -> list[tuple[str, float]]:
        raw = one(body, **options)[2]
        top = json.loads(raw)["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        return [(c["token"], round(math.exp(c["logprob"]), 6)) for c in top]

    assert listed() == [("1", 0.7), ("0", 0.3)]  # the default, unchanged
    assert listed(omit_from_top="0") == [("1", 0.7)]
    assert listed(top_k_cap=1, p_one=0.2) == [("0", 0.8)]  # all but the most probable
    extra = listed(top_extra="3=0.5,Sure=0.1")
    assert extra == [("1", 0.7), ("3", 0.5), ("0", 0.3), ("Sure", 0.1)]
    filled = listed(top_filler_p=0.2, p_one=0.85)
    assert len(filled) == 20 and filled[0] == ("1", 0.85) and ("0", 0.15) not in filled
    assert {p for _, p in filled[1:]} == {0.2}
    with pytest.raises(ValueError, match="token=probability"):
        one(body, top_extra="3")


def test_acceptance_an_exact_run_shows_a_hidden_answer_as_censored_not_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 11.2: top-20 lists in which an answer below 0.2 is not shown (p = 15 % and 85 %)."""
    with running_in_thread(FaultConfig(echo_p=True, top_filler_p=0.2)) as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        run = flipbench(
            "run", "single-flip", "--model", "openrouter/fault/model", "--mode", "exact",
            "--grid", "t2", "--run-id", "top20", "--no-progress", "--db", "j.db",
            cwd=tmp_path, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        shown = {
            fmt: flipbench("show", "top20", "--db", "j.db", "--format", fmt, cwd=tmp_path)
            for fmt in ("table", "json", "csv")
        }
    assert_ok(run)
    for proc in shown.values():
        assert_ok(proc)
    data = json.loads(shown["json"].stdout)
    rows = {c["condition"]: c for c in data["conditions"]}
    # p = 15 %: "1" (0.15) is below the 20 fillers of 0.2: r("1") ∈ [0, 0.2 / (0.85 + 0.2)]
    low = rows["p=15"]
    assert low["censored"] is True and low["rate"] is None and low["n_valid"] == 1
    assert (low["ci_low"], low["ci_high"]) == pytest.approx((0.0, 0.2 / 1.05))
    # p = 85 %: "0" is hidden: r("1") ∈ [0.85 / 1.05, 1]
    high = rows["p=85"]
    assert high["censored"] is True and high["rate"] is None
    assert (high["ci_low"], high["ci_high"]) == pytest.approx((0.85 / 1.05, 1.0))
    for key, p in (("p=30", 0.3), ("p=40", 0.4), ("p=45", 0.45), ("p=55", 0.55), ("p=70", 0.7)):
        assert rows[key]["censored"] is False and rows[key]["rate"] == pytest.approx(p)
    assert data["censored_conditions"] == 2
    assert data["S"]["value"] is None and data["metrics"]["S"]["value"] is None
    # S only bounded: its least and most over the censored rates' bounds, with the true curve
    # r = p inside; no noise floor and no noise-corrected S (exact rates, only bounded).
    p = [0.15, 0.3, 0.4, 0.45, 0.55, 0.7, 0.85]
    lows = [0.0, 0.3, 0.4, 0.45, 0.55, 0.7, 0.85 / 1.05]
    highs = [0.2 / 1.05, 0.3, 0.4, 0.45, 0.55, 0.7, 1.0]
    s_low, s_high = step_likeness_bounds(p, lows, highs)
    assert (data["S"]["low"], data["S"]["high"]) == pytest.approx((s_low, s_high))
    assert data["metrics"]["S"]["low"] == pytest.approx(s_low)
    assert s_low <= step_likeness(p, p) <= s_high and s_low < s_high
    assert data["S_noise_floor"] is None and data["S_corrected"] is None
    assert data["metrics"]["S_noise_floor"] is None and data["metrics"]["S_corrected"] is None
    assert data["S_interval_method"] == "bounds (censored exact rates)"
    table = shown["table"].stdout
    assert "≤0.190*" in table and "≥0.810*" in table and "S =" not in table
    assert "censored (*): 2 of 7 conditions" in table
    assert f"S ∈ [{s_low:.3f}, {s_high:.3f}]" in " ".join(table.split())
    assert "noise floor at" not in table
    csv_rows = list(csv.DictReader(io.StringIO(shown["csv"].stdout)))
    assert [r["censored"] for r in csv_rows[:7]] == ["True"] + ["False"] * 5 + ["True"]
    with Journal(tmp_path / "j.db", create=False) as journal:
        stored = {r["condition"]: r for r in journal.samples("top20")}
    row = stored["p=15"]
    meta = json.loads(row["meta_json"])["censored"]
    assert row["valid"] and row["probs_json"] is None  # no point is stored: no silent 0
    assert meta["missing"] == ["1"] and meta["kth_prob"] == pytest.approx(0.2)
    assert meta["listed"] == meta["top_logprobs"] == 20
    assert meta["point"] == {"0": 1.0, "1": 0.0}  # what would have been shown
    assert meta["bounds"]["1"] == pytest.approx([0.0, 0.2 / 1.05])


SHARED = ExperimentDefinition(
    name="test-shared-first-token",
    title="Two numbers with one first digit",
    version="1",
    prompt="Pick 37 or 30 ({p}).",
    grids={
        "default": tuple(
            ConditionSpec(key=f"p={p}", value=p, x=int(p) / 100, fields={"p": p})
            for p in ("40", "60")
        )
    },
    answers=("37", "30"),
    first="37",
)


def test_a_shared_first_token_over_the_api_is_censored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(EXPERIMENTS, SHARED.name, SHARED)
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    # The lists show "1" 0.7, "3" 0.5, "0" 0.3, "37" 0.2: "3" begins both answers.
    with running_in_thread(FaultConfig(top_extra="3=0.5,37=0.2")) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)

        async def read() -> Reply:
            backend = OpenRouterBackend("openrouter/fault/model")
            await backend.start(concurrency=1, exact=True)
            try:
                return await backend.distribution(BODY["messages"], ["37", "30"])
            finally:
                await backend.close()

        reply = asyncio.run(read())
        outcome = start_run(
            RunConfig(model="openrouter/fault/model", experiment=SHARED.name, mode="exact"),
            tmp_path / "j.db",
        )
    assert reply.censoring is not None and reply.censoring.missing == ()
    assert [(s.token, s.answers) for s in reply.censoring.shared] == [("3", ("37", "30"))]
    assert outcome.results is not None
    for c in outcome.results.conditions:  # r("37") ∈ [0.2 / 0.7, 1]: "3" may go either way
        assert c.censored and math.isnan(c.rate) and c.n_valid == 1
        assert (c.ci_low, c.ci_high) == pytest.approx((0.2 / 0.7, 1.0))
    assert math.isnan(outcome.results.s)
    # Two conditions only: S is bounded, never a point, and carries no noise floor.
    low, high = outcome.results.s_ci
    assert 0.0 <= low < high and math.isnan(outcome.results.s_noise_floor)
    assert math.isnan(outcome.results.s_corrected)


def test_s_bounds_hold_every_curve_within_the_rate_bounds() -> None:
    """`step_likeness_bounds` is the least and most S of the curves inside the bounds."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        m = int(rng.integers(2, 8))
        p = np.sort(rng.choice(np.linspace(0.0, 1.0, 21), m, replace=False))
        a, b = rng.random(m), rng.random(m)
        exact = rng.random(m) < 0.5  # some rates are points, as in a partly censored run
        low, high = np.minimum(a, b), np.where(exact, np.minimum(a, b), np.maximum(a, b))
        least, most = step_likeness_bounds(p, low, high)
        draws = rng.uniform(low, high, size=(2000, m))
        corners = np.where(rng.random((2000, m)) < 0.5, low, high)
        values = [step_likeness(p, r) for r in (*draws, *corners, np.clip(p, low, high))]
        # (the least at r = p clipped into the bounds, unless a flat end outweighs it)
        assert least - 1e-12 <= min(values) and max(values) <= most + 1e-12
        assert min(values) - least < 0.05 and most - max(values) < 0.05  # and tight
    assert step_likeness_bounds([0.2, 0.6], [0.3, 0.6], [0.3, 0.6]) == pytest.approx(
        (step_likeness([0.2, 0.6], [0.3, 0.6]),) * 2
    )
    assert all(math.isnan(v) for v in step_likeness_bounds([0.5], [0.1], [0.2]))
    with pytest.raises(ValueError, match="low must be"):
        step_likeness_bounds([0.2, 0.6], [0.5, 0.6], [0.4, 0.7])
