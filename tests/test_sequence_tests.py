"""Serial tests of many short sequences: exact nulls against enumeration, size by simulation,
power against planted alternators and streaks, and untrusted input (Hypothesis)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench.analysis import ConditionData
from flipbench.estimate import strict_json
from flipbench.kinds import analyse
from flipbench.kinds.sequences import protocol_differences
from flipbench.metric_models import SequenceMetrics
from flipbench.results import compute_results
from flipbench.sequence_compare import lag1_difference
from flipbench.sequence_nulls import changes_moments, changes_pmf_binary, longest_run_cdf
from flipbench.sequence_tests import SequenceTests, sequence_tests
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import Condition
from tests.cli_helpers import assert_ok, flipbench
from tests.synthetic_runs import Answer, make_run

ALPHA = 0.05
N_SETS = 400
#: Three binomial standard deviations of a rejection rate at ALPHA over N_SETS data sets.
BAND = 3 * math.sqrt(ALPHA * (1 - ALPHA) / N_SETS)


def _changes(x: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(x)))


@pytest.mark.parametrize("n0,n1", [(1, 1), (2, 3), (4, 4), (0, 3), (5, 1), (3, 6)])
def test_runs_null_is_the_enumerated_one(n0: int, n1: int) -> None:
    length = n0 + n1
    pmf = np.zeros(length)
    for ones in itertools.combinations(range(length), n1):
        x = np.zeros(length, dtype=int)
        x[list(ones)] = 1
        pmf[_changes(x)] += 1
    pmf /= pmf.sum()
    assert np.allclose(changes_pmf_binary(n0, n1), pmf)
    mean, var = changes_moments([[n0, n1]])
    c = np.arange(length)
    assert mean[0] == pytest.approx(c @ pmf)
    assert var[0] == pytest.approx(((c - c @ pmf) ** 2) @ pmf)


@pytest.mark.parametrize("counts", [(2, 1, 1), (3, 2, 2), (1, 1, 1, 2)])
def test_categorical_runs_moments_are_the_enumerated_ones(counts: tuple[int, ...]) -> None:
    base = [i for i, c in enumerate(counts) for _ in range(c)]
    changes = [_changes(np.array(p)) for p in set(itertools.permutations(base))]
    mean, var = changes_moments([counts])
    assert mean[0] == pytest.approx(np.mean(changes))
    assert var[0] == pytest.approx(np.var(changes))


def test_longest_run_distribution_is_the_enumerated_one() -> None:
    q = np.array([0.3, 0.7])
    cdf = longest_run_cdf(6, q)
    for t in range(1, 7):
        dist = np.zeros(t + 1)
        for seq in itertools.product([0, 1], repeat=t):
            s = np.array(seq)
            bounds = np.concatenate(([0], np.flatnonzero(np.diff(s)) + 1, [t]))
            dist[np.diff(bounds).max()] += np.prod(q[s])
        assert np.allclose(cdf[t, : t + 1], np.cumsum(dist))


def _p_values(result: SequenceTests) -> dict[str, float | None]:
    return {
        "runs": result.runs.p_value,
        "lag1": result.autocorrelation[0].p_value,
        "bigrams": result.bigrams.p_value,
        "longest": result.longest_run.p_value,
    }


@pytest.mark.parametrize("p,d", [(0.2, 3), (0.5, 10), (0.7, 2)])
def test_iid_flips_are_rejected_at_the_nominal_rate(p: float, d: int) -> None:
    """400 data sets of 100 replies of D i.i.d. flips: each test rejects about 5 % of them
    (measured: runs 3.7–5.5 %, lag-1 4.5–6.5 %, bigrams 4.8–6.2 % over p 0.1–0.5, D 3–50).
    The longest run plugs the observed rate in and is conservative away from p = 0.5 (0–3 %
    at p ≤ 0.3): it must not reject more than the band allows."""
    rng = np.random.default_rng(7)
    rejected = {"runs": 0, "lag1": 0, "bigrams": 0, "longest": 0}
    tested = dict.fromkeys(rejected, 0)
    for _ in range(N_SETS):
        x = (rng.random((100, d)) < p).astype(int)
        result = sequence_tests(x, categories=["0", "1"], per_position=False, max_lag=1)
        for name, value in _p_values(result).items():
            if value is not None:
                tested[name] += 1
                rejected[name] += value < ALPHA
    for name in ("lag1", "bigrams") + (("runs",) if d > 2 else ()):
        assert tested[name] >= 0.95 * N_SETS, name
        assert abs(rejected[name] / tested[name] - ALPHA) <= BAND, (name, rejected[name])
    assert rejected["longest"] / tested["longest"] <= ALPHA + BAND
    if d == 2:
        assert tested["runs"] == 0  # two flips: the runs are fixed by the counts


def test_three_outcomes_are_rejected_at_the_nominal_rate() -> None:
    """A three-way deck (0.6, 0.3, 0.1), 5 draws per reply: the runs test (normal, exact
    Barton–David moments) and the 3 × 3 bigram table reject about 5 % of i.i.d. data sets
    (measured 3.8–5.5 % and 3.5–4.8 % over three settings)."""
    rng = np.random.default_rng(3)
    runs = bigrams = 0
    for _ in range(N_SETS):
        x = rng.choice(3, size=(100, 5), p=(0.6, 0.3, 0.1))
        result = sequence_tests(x, categories=["0", "1", "2"], per_position=False)
        assert result.autocorrelation == []  # binary outcomes only
        runs += (result.runs.p_value or 1.0) < ALPHA
        bigrams += (result.bigrams.p_value or 1.0) < ALPHA
    assert abs(runs / N_SETS - ALPHA) <= BAND and abs(bigrams / N_SETS - ALPHA) <= BAND


def _alternator(rng: np.random.Generator, n: int, d: int, switch: float) -> np.ndarray:
    first = rng.integers(0, 2, n)
    steps = (rng.random((n, d - 1)) < switch).astype(int)
    return np.concatenate([first[:, None], first[:, None] ^ np.cumsum(steps, axis=1) % 2], axis=1)


@pytest.mark.parametrize("switch", [1.0, 0.8])
@pytest.mark.parametrize("start", ["random", "fixed"])
def test_alternators_are_flagged(switch: float, start: str) -> None:
    rng = np.random.default_rng(1)
    x = _alternator(rng, 100, 10, switch)
    if start == "fixed":
        x = x ^ x[:, :1]  # every reply starts with 0
    result = sequence_tests(x, categories=["0", "1"])
    assert result.runs.p_value is not None and result.runs.p_value < 1e-3
    assert result.runs.runs > (result.runs.expected or math.inf)
    lag1 = result.autocorrelation[0]
    assert lag1.p_value is not None and lag1.p_value < 1e-3 and (lag1.rho or 0) < -0.4
    assert result.bigrams.p_value is not None and result.bigrams.p_value < 1e-3


def test_streaks_are_flagged() -> None:
    """A sticky Markov chain (stays with probability 0.85) at a stationary rate of 1/2."""
    x = _alternator(np.random.default_rng(2), 100, 10, 0.15)
    result = sequence_tests(x, categories=["0", "1"])
    assert result.runs.p_value is not None and result.runs.p_value < 1e-3
    assert result.runs.runs < (result.runs.expected or 0)
    assert (result.autocorrelation[0].rho or 0) > 0.4
    assert (result.autocorrelation[0].p_value or 1) < 1e-3
    assert result.longest_run.p_value is not None and result.longest_run.p_value < 1e-3
    assert (result.longest_run.mean_observed or 0) > (result.longest_run.mean_expected or 0)


def test_two_chained_flips_alternating_are_flagged_without_a_runs_test() -> None:
    """D = 2 (the chained protocol): the runs are fixed by the counts, so the runs test says it
    cannot test; lag-1 and the bigrams still see a second flip that undoes the first."""
    x = _alternator(np.random.default_rng(3), 100, 2, 0.9)
    result = sequence_tests(x, categories=["0", "1"])
    assert result.runs.p_value is None and result.runs.note
    assert (result.autocorrelation[0].p_value or 1) < 1e-3
    assert (result.bigrams.p_value or 1) < 1e-3


def test_an_invalid_position_breaks_the_pairs() -> None:
    result = sequence_tests([[0, None, 1], [1, float("nan"), 0]], categories=["0", "1"])
    assert result.n_invalid == 2 and result.n_valid == 4
    assert result.bigrams.n_pairs == 0 and result.runs.n_segments == 0
    assert result.autocorrelation[0].n_pairs == 0 and result.autocorrelation[0].p_value is None
    assert [p.n for p in result.per_position] == [2, 0, 2]


def test_a_float_matrix_with_nan_gaps_reads_as_flips() -> None:
    x = np.array([[0.0, 1.0, np.nan, 1.0], [1.0, 0.0, 1.0, 0.0]])
    result = sequence_tests(x, categories=["0", "1"])
    assert (result.n_valid, result.n_invalid) == (7, 1)
    assert result.bigrams.n_pairs == 1 + 3


def test_ragged_sequences_pair_only_within_themselves() -> None:
    result = sequence_tests([["a", "b", "a"], ["b"], ["a", "a"]])
    assert result.categories == ["a", "b"]
    assert result.bigrams.n_pairs == 3
    assert result.runs.runs == 3 + 1  # "a b a" has 3 runs, "a a" one; "b" alone is no segment


def test_constant_replies_test_nothing_and_say_so() -> None:
    result = sequence_tests(np.ones((50, 10), dtype=int), categories=["0", "1"])
    assert result.runs.p_value is None and result.runs.note
    assert all(a.p_value is None and a.note for a in result.autocorrelation)
    assert result.longest_run.p_value is None and result.longest_run.note
    assert result.bigrams.p_value is None and result.bigrams.note


def test_an_outcome_outside_the_categories_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside the categories"):
        sequence_tests([[0, 1, 2]], categories=["0", "1"])


_outcome = st.one_of(st.none(), st.just(float("nan")), st.sampled_from(["0", "1", "2"]))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(_outcome, max_size=12), max_size=15),
    st.integers(min_value=1, max_value=4),
)
def test_any_input_gives_p_values_in_range_or_none(
    sequences: list[list[str | float | None]], max_lag: int
) -> None:
    result = sequence_tests(sequences, max_lag=max_lag)
    values = [result.runs.p_value, result.longest_run.p_value, result.longest_run.p_longest,
              result.bigrams.p_value, *(a.p_value for a in result.autocorrelation)]  # fmt: skip
    for value in values:
        assert value is None or 0.0 <= value <= 1.0
    for a in result.autocorrelation:
        assert a.p_value is not None or a.note  # no test without saying why
    assert result.runs.p_value is not None or result.runs.note
    json.dumps(strict_json(result), allow_nan=False)  # the JSON `show` writes
    assert isinstance(result.summary(), str)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 12), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_binary_matrices_of_any_shape(n: int, d: int, p: float, seed: int) -> None:
    x = (np.random.default_rng(seed).random((n, d)) < p).astype(int)
    result = sequence_tests(x, categories=["0", "1"])
    assert result.n_valid == n * d
    assert len(result.autocorrelation) == min(5, d - 1)
    for a in result.autocorrelation:
        assert a.p_value is None or 0.0 <= a.p_value <= 1.0
        assert a.rho is None or math.isfinite(a.rho)


# ----- the d-flips / chained kind, `show` and its JSON ---------------------------------------


def _alternating_answer(d: int) -> Answer:
    """A model that alternates from a random first flip: every reply "0 1 0 …" or "1 0 1 …"."""

    def answer(cond: Condition, i: int, rng: np.random.Generator) -> str:
        first = int(rng.integers(0, 2))
        return " ".join(str((first + j) % 2) for j in range(d))

    return answer


def test_the_sequence_kind_reports_the_serial_tests_per_p() -> None:
    experiment = get_experiment("d-flips").resolve(p_values=["30", "50"], d=10)
    rng = np.random.default_rng(0)
    answer = _alternating_answer(10)
    data = [
        ConditionData(c, [answer(c, i, rng) for i in range(60)]) for c in experiment.conditions()
    ]
    result = analyse(experiment, data)
    assert isinstance(result.metrics, SequenceMetrics) and result.metrics.serial is not None
    assert set(result.metrics.serial) == {"0.3", "0.5"}
    for tests in result.metrics.serial.values():
        assert tests.runs.p_value is not None and tests.runs.p_value < 1e-3
        assert tests.autocorrelation[0].rho == pytest.approx(-1.0)
    assert sum(line.startswith("serial p=") for line in result.lines) == 2


def test_show_prints_the_serial_tests_and_the_json_carries_them(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    experiment = get_experiment("d-flips").resolve(p_values=["30", "70"], n=50, d=6)
    with Journal(db) as journal:
        make_run(journal, "alt", experiment, _alternating_answer(6))
        journal.set_status("alt", "complete")
    table = flipbench("show", "alt", "--db", str(db), cwd=tmp_path)
    assert_ok(table)
    line = next(x for x in table.stdout.splitlines() if "serial p=0.3:" in x)
    assert "runs 300 vs 200.0" in line and "lag 1 -1.00" in line and "bigrams χ²" in line
    proc = flipbench("show", "alt", "--format", "json", "--db", str(db), cwd=tmp_path)
    assert_ok(proc)
    serial = json.loads(proc.stdout)["metrics"]["serial"]
    assert serial["0.7"]["runs"]["runs"] == 6 * 50  # every flip starts a run
    assert serial["0.7"]["runs"]["p_value"] < 1e-3
    assert serial["0.7"]["autocorrelation"][0]["p_value"] < 1e-3


def test_the_html_report_has_a_serial_table_and_figure(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    experiment = get_experiment("chained-flips").resolve(n=40, p_values=["20", "50"])
    with Journal(db) as journal:
        make_run(journal, "chain", experiment, _alternating_answer(2))
    out = tmp_path / "report.html"
    assert_ok(flipbench("report", "chain", "--db", str(db), "--out", str(out), cwd=tmp_path))
    page = out.read_text(encoding="utf-8")
    assert "<h3>Serial tests</h3>" in page and 'alt="serial tests"' in page
    row = page[page.index("<h3>Serial tests</h3>") :].split("<tr><td>")[1]
    # two chained flips: no runs test (fixed by the counts), lag 1 at −1 with a tiny p-value
    assert row.startswith("20%</td><td>40</td><td>80 / 80.0</td><td>—</td><td>-1.000</td>")


# ----- the two protocols compared ---------------------------------------------------------------


def _markov(rng: np.random.Generator, n: int, d: int, stay: float) -> np.ndarray:
    """Replies of a two-state chain at a stationary rate of 1/2: lag-1 correlation 2·stay − 1."""
    x = np.zeros((n, d), dtype=int)
    x[:, 0] = rng.random(n) < 0.5
    for j in range(1, d):
        x[:, j] = np.where(rng.random(n) < stay, x[:, j - 1], 1 - x[:, j - 1])
    return x


@pytest.mark.parametrize("stay_a,stay_b,d", [(0.5, 0.2, 2), (0.7, 0.3, 10)])
def test_the_lag1_difference_interval_covers(stay_a: float, stay_b: float, d: int) -> None:
    """150 pairs of runs (independent vs alternating; streaky vs alternating): the 95 %
    interval of ρ₁(a) − ρ₁(b) covers the true 2·(stay_a − stay_b) about 95 % of the time
    (measured with 300 pairs and 1,000 resamples: 0.94–0.97 over four such settings)."""
    rng = np.random.default_rng(11)
    sims = 150
    covered = 0
    for i in range(sims):
        a, b = _markov(rng, 80, d, stay_a), _markov(rng, 80, d, stay_b)
        diff = lag1_difference(a, b, n_boot=500, seed=i).difference
        assert diff is not None
        covered += diff.low <= 2 * (stay_a - stay_b) <= diff.high
    assert abs(covered / sims - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / sims)


def test_protocols_compared_on_one_grid(tmp_path: Path) -> None:
    """d-flips (D = 2, independent flips) against chained flips whose second turn undoes the
    first: ρ₁ 0 against −1 at every shared p."""
    one_reply = get_experiment("d-flips").resolve(p_values=["30", "50", "70"], n=60, d=2)
    chained = get_experiment("chained-flips").resolve(p_values=["50", "70"], n=60)

    def independent(cond: Condition, i: int, g: np.random.Generator) -> str:
        return " ".join(str(int(g.random() < cond.x)) for _ in range(2))

    with Journal(tmp_path / "j.db") as journal:
        make_run(journal, "one", one_reply, independent)
        make_run(journal, "chain", chained, _alternating_answer(2))
        a, b = compute_results(journal, "one"), compute_results(journal, "chain")
    differences = protocol_differences(a, b)
    assert set(differences) == {"0.5", "0.7"}
    for diff in differences.values():
        assert diff.rho_b == pytest.approx(-1.0) and diff.difference is not None
        assert diff.difference.low > 0.5 and abs(diff.rho_a or 0) < 0.35
    assert lag1_difference(np.ones((5, 2)), np.zeros((5, 2))).difference is None
    with pytest.raises(ValueError, match="0/1"):
        lag1_difference(np.full((3, 2), 2), np.ones((3, 2)))


def test_the_protocols_command_prints_the_differences_and_refuses_other_runs(
    tmp_path: Path,
) -> None:
    from cli_helpers import flipbench

    one_reply = get_experiment("d-flips").resolve(p_values=["50", "70"], n=60, d=2)
    chained = get_experiment("chained-flips").resolve(p_values=["50", "70"], n=60)
    single = get_experiment("single-flip").resolve(p_values=["50"], n=5)

    def independent(cond: Condition, i: int, g: np.random.Generator) -> str:
        return " ".join(str(int(g.random() < cond.x)) for _ in range(2))

    db = tmp_path / "j.db"
    with Journal(db) as journal:
        make_run(journal, "one", one_reply, independent)
        make_run(journal, "chain", chained, _alternating_answer(2))
        make_run(journal, "single", single, lambda c, i, g: "1")
    shown = flipbench("protocols", "one", "chain", "--db", str(db), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = [
        line for line in shown.stdout.splitlines() if line.lstrip("│ ").startswith(("0.5", "0.7"))
    ]
    assert len(rows) == 2 and all("-1.000" in row for row in rows), shown.stdout
    as_json = flipbench("protocols", "one", "chain", "--db", str(db), "--format", "json",
                        cwd=tmp_path)  # fmt: skip
    assert set(json.loads(as_json.stdout)) == {"0.5", "0.7"}
    refused = flipbench("protocols", "one", "single", "--db", str(db), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("error: run single is")
