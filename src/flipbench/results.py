"""From journal rows to numbers: per-condition rates with intervals, invalid shares, and S."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from flipbench.analysis import ConditionData
from flipbench.estimate import Estimate, strict_json
from flipbench.kinds import analyse
from flipbench.metric_models import KindMetrics
from flipbench.metrics import exact_rate_interval, rate_summary, step_likeness_bounds
from flipbench.store import Journal, RunRow
from flipbench.tasks.definition import Condition, ResolvedExperiment


@dataclass
class ConditionResult:
    """One grid point: the requested p, the observed (or exact) rate and how it was obtained."""

    condition: str
    p: float
    rate: float
    ci_low: float
    ci_high: float
    n_valid: int
    n_total: int
    k: int = 0
    coverage: float | None = None
    invalid: dict[str, int] = field(default_factory=dict)
    value: str = ""  # the grid value as the prompt printed it
    # Exact mode from a truncated top-k list that hid an answer (or a first token that several
    # answers share): the rate is unknown (NaN) and lies in [ci_low, ci_high].
    censored: bool = False

    @property
    def invalid_share(self) -> float:
        return (self.n_total - self.n_valid) / self.n_total if self.n_total else float("nan")


@dataclass(frozen=True)
class GridCoverage:
    """The share of a run's grid its journal holds: conditions with at least one valid answer
    (what S is computed from), conditions at N, and valid samples counted up to N each."""

    conditions_total: int
    conditions_answered: int
    conditions_full: int
    valid_samples: int
    target_samples: int

    @property
    def grid_share(self) -> float:
        """Answered conditions over all conditions: how much of the grid S stands on."""
        return self.conditions_answered / self.conditions_total if self.conditions_total else 0.0

    @property
    def sample_share(self) -> float:
        return self.valid_samples / self.target_samples if self.target_samples else 0.0

    def text(self) -> str:
        """`6 of 21 conditions answered (29 % of the grid), 3 at N; 412 of 2,100 valid samples`."""
        return (
            f"{self.conditions_answered} of {self.conditions_total} conditions answered"
            f" ({self.grid_share:.0%} of the grid), {self.conditions_full} at N;"
            f" {self.valid_samples:,} of {self.target_samples:,} valid samples"
            f" ({self.sample_share:.0%})"
        )


#: Above this share of [0, 1] held flat beyond the grid, S is flagged as mostly extrapolation.
EXTRAPOLATED_MOSTLY = 0.5


@dataclass
class RunResults:
    """Everything `show` prints for a run."""

    run: RunRow
    experiment: ResolvedExperiment
    conditions: list[ConditionResult]
    s: float
    s_ci: tuple[float, float]
    # Sum of the usable `usage.cost` values; None when no reply reported one. With
    # `cost_unusable` > 0 it is a lower bound (see `CostTotal`).
    cost_usd: float | None = None
    # The experiment's own metrics, typed by its kind (None only for results built by hand).
    metrics: KindMetrics | None = None
    lines: list[str] = field(default_factory=list)  # their one-line summaries, for `show`
    # Per condition: the valid answers (sampled) or the exact distribution, for scoring.
    raw: list[tuple[Condition, list[str], dict[str, float] | None]] = field(default_factory=list)
    cost_unusable: int = 0  # replies whose reported cost could not be used as is
    cost_uncounted: int = 0  # of these, the ones not in cost_usd at all (it is a lower bound)
    # Paid calls a process had in flight when it died (never journaled), and what the budget
    # counted for them; not in cost_usd.
    lost_calls: int = 0
    lost_cost_usd: float = 0.0
    # Beside S: the S a perfectly calibrated model is expected to score at this grid and n
    # (0 when exact), S minus its bootstrap bias, and how the interval s_ci was made.
    s_noise_floor: float = math.nan
    s_corrected: float = math.nan
    s_interval_method: str = ""

    @property
    def n_requests(self) -> int:
        return sum(c.n_total for c in self.conditions)

    @property
    def s_extrapolated_share(self) -> float:
        """How much of [0, 1] S fills by holding r flat beyond the conditions answered: 0.7 for
        the paper's Fig. 3 (p = 15 % and 45 % only). NaN when S is undefined."""
        xs = [c.p for c in self.conditions if c.n_valid > 0 and math.isfinite(c.p)]
        if math.isnan(self.s) or len(xs) < 2:
            return math.nan
        return 1.0 - (max(xs) - min(xs))

    @property
    def mostly_extrapolated(self) -> bool:
        """More than half of S's interval is extrapolation: not comparable with S on a grid
        that spans [0, 1]."""
        return self.s_extrapolated_share > EXTRAPOLATED_MOSTLY

    @property
    def grid_coverage(self) -> GridCoverage:
        """How much of the grid the journal holds: what S is computed from."""
        per_condition = 1 if self.run.mode == "exact" else self.experiment.n
        return GridCoverage(
            conditions_total=len(self.conditions),
            conditions_answered=sum(c.n_valid > 0 for c in self.conditions),
            conditions_full=sum(c.n_valid >= per_condition for c in self.conditions),
            valid_samples=sum(min(c.n_valid, per_condition) for c in self.conditions),
            target_samples=per_condition * len(self.conditions),
        )

    @property
    def partial(self) -> bool:
        """S of a run that did not complete (interrupted, stopped, incomplete, failed, still
        running) is computed from whatever the journal holds: not the run's final S."""
        return self.run.display_status != "complete"

    @property
    def n_censored(self) -> int:
        """Conditions whose exact rate is only bounded (see `ConditionResult.censored`)."""
        return sum(c.censored for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: run identity, settings, per-condition rows and S."""
        rows = []
        for c in self.conditions:
            row = asdict(c)
            row["invalid_share"] = c.invalid_share
            rows.append(row)
        view: dict[str, Any] = strict_json(
            {
                "run_id": self.run.run_id,
                "experiment": self.run.experiment,
                "model": self.run.model,
                "mode": self.run.mode,
                "status": self.run.display_status,
                "created_at": self.run.created_at,
                "definition_hash": self.run.definition_hash,
                "config": self.run.config,
                "versions": self.run.versions,
                "conditions": rows,
                "S": {"value": self.s, "low": self.s_ci[0], "high": self.s_ci[1]},
                "S_noise_floor": self.s_noise_floor,
                "S_corrected": self.s_corrected,
                "S_interval_method": self.s_interval_method or None,
                "S_extrapolated_share": self.s_extrapolated_share,
                "S_partial": self.partial,
                "grid_coverage": asdict(self.grid_coverage)
                | {
                    "grid_share": self.grid_coverage.grid_share,
                    "sample_share": self.grid_coverage.sample_share,
                },
                "censored_conditions": self.n_censored,
                "cost_usd": self.cost_usd,
                "cost_unusable": self.cost_unusable,
                "cost_uncounted": self.cost_uncounted,
                "cost_is_lower_bound": self.cost_uncounted > 0,
                "lost_in_flight": {"calls": self.lost_calls, "counted_usd": self.lost_cost_usd},
                "metrics": self.metrics.to_json() if self.metrics is not None else {},
            }
        )
        return view


#: A reply reporting more than this (the largest --max-cost) did not really cost it.
MAX_REPLY_COST = 1e6


@dataclass
class CostTotal:
    """What a run's replies reported they cost, counted so that no stored value can break it.

    Rule: a stored cost that is a finite number in [0, MAX_REPLY_COST] is added (for a reply
    the provider flagged — `meta.cost_flag`: negative, non-finite or unreadable — that is the
    $0 or the conservative estimate it stored instead). A negative stored cost counts as 0. An
    infinite, NaN, larger or non-numeric one, or a flagged reply with no cost stored, is not
    added: it is `uncounted`, and `total` is then a lower bound. Every reply whose reported
    cost could not be used as is counts in `unusable`.
    """

    unusable: int = 0
    uncounted: int = 0
    _values: list[float] = field(default_factory=list, repr=False)

    @property
    def total(self) -> float | None:
        """The sum of the counted costs; None when no reply reported a usable one."""
        return math.fsum(self._values) if self._values else None

    def add(self, cost: Any, meta_json: str | None = None) -> None:
        flagged = _cost_flag(meta_json) is not None
        counted = False
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            value = float(cost)
            if math.isfinite(value) and 0 <= value <= MAX_REPLY_COST:
                self._values.append(value)
                counted = True
            elif value < 0:  # negative (even -inf): nothing spent, as far as we can tell
                self._values.append(0.0)
                flagged = counted = True
            else:
                flagged = True
        elif cost is not None:  # a text or blob where a number belongs
            flagged = True
        self.unusable += flagged
        self.uncounted += flagged and not counted


def _meta_field(meta_json: Any, key: str) -> Any:
    """`meta[key]` of a row's meta JSON, or None (the JSON is parsed only when the key's name
    occurs in it: most rows carry neither flag; never raises)."""
    if not isinstance(meta_json, str) or f'"{key}"' not in meta_json:
        return None
    try:
        meta = json.loads(meta_json)
    except (ValueError, RecursionError):
        return None
    return meta.get(key) if isinstance(meta, dict) else None


def _cost_flag(meta_json: str | None) -> str | None:
    """The provider's flag on a reply's reported cost, if any (never raises)."""
    flag = _meta_field(meta_json, "cost_flag")
    return str(flag) if flag else None


def _probs(probs_json: Any) -> dict[str, float] | None:
    """An exact row's answer distribution; None unless it is an object of finite numbers."""
    try:
        probs = json.loads(probs_json)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(probs, dict) or not probs:
        return None
    values = list(probs.values())
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return None
    return {str(k): float(v) for k, v in probs.items()}


def _censored_bounds(meta_json: Any, first: str) -> tuple[float, float] | None:
    """[low, high] of the first answer's rate of a censored exact row (`meta.censored`, written
    by the runner); None when the row is not censored. Unreadable bounds are [0, 1]."""
    censored = _meta_field(meta_json, "censored")
    if not isinstance(censored, dict):
        return None
    bounds = censored.get("bounds")
    pair = bounds.get(first) if isinstance(bounds, dict) else None
    if (
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        and 0 <= pair[0] <= pair[1] <= 1
    ):
        return float(pair[0]), float(pair[1])
    return 0.0, 1.0


def _censored_line(censored: int, total: int, bounds: tuple[float, float]) -> str:
    if math.isnan(bounds[0]):
        s_text = "S is not computed"
    else:
        s_text = (
            f"S ∈ [{bounds[0]:.3f}, {bounds[1]:.3f}] (the least and most S these bounds allow;"
            " no noise floor: exact rates carry no sampling noise)"
        )
    return (
        f"censored (*): {censored} of {total} conditions — an answer was below the top"
        " log-probabilities the API returns, or several answers share a first token — so their"
        f" rates are bounds [ci_low, ci_high], not points; {s_text}, and the kind's"
        " other metrics leave them out"
    )


def _without_s(metrics: KindMetrics, bounds: tuple[float, float]) -> KindMetrics:
    """The kind's metrics with its S (if it has one) only bounded (value NaN, [low, high] the
    bounds, NaN when not even they are known), and no noise floor or noise-corrected S: both
    describe a point S from sampled rates, and exact rates that are only bounded have
    neither."""
    if not isinstance(getattr(metrics, "S", None), Estimate):
        return metrics
    update: dict[str, Any] = {"S": Estimate(math.nan, *bounds)}
    for name in ("S_noise_floor", "S_corrected"):
        if name in type(metrics).model_fields:
            update[name] = None
    return metrics.model_copy(update=update)


def _s_bounds(metrics: KindMetrics, rows: list[ConditionResult]) -> tuple[float, float]:
    """The least and most S of a censored run's rates (points and bounds); NaN when the kind
    has no S or fewer than two conditions have a rate."""
    if not isinstance(getattr(metrics, "S", None), Estimate):
        return (math.nan, math.nan)
    read = [c for c in rows if c.n_valid > 0]
    return step_likeness_bounds(
        [c.p for c in read], [c.ci_low for c in read], [c.ci_high for c in read]
    )


#: What the results read of each sample: not the request and response bodies, which are most
#: of a journal's bytes (reading them made `show` on a million samples several times slower).
_RESULT_COLUMNS = (
    "condition", "valid", "answer", "content", "invalid_category", "probs_json", "coverage",
    "cost", "meta_json",
)  # fmt: skip


def compute_results(journal: Journal, run_id: str) -> RunResults:
    """Read a run back from the journal and compute its rates, intervals and every metric."""
    run = journal.get_run(run_id)
    experiment = ResolvedExperiment(**run.definition)
    exact = run.mode == "exact"
    conditions = experiment.conditions()
    data = {c.key: ConditionData(c) for c in conditions}
    totals: Counter[str] = Counter()
    invalid: dict[str, Counter[str]] = {}
    coverage: dict[str, float | None] = {}
    censored: dict[str, tuple[float, float]] = {}  # exact rows whose rates are only bounded
    costs = CostTotal()
    for row in journal.samples(run_id, _RESULT_COLUMNS):
        key = row["condition"]
        totals[key] += 1
        costs.add(row["cost"], row["meta_json"])
        if key not in data:
            continue
        probs = _probs(row["probs_json"]) if exact and row["valid"] else None
        bounds = _censored_bounds(row["meta_json"], data[key].condition.first) if exact else None
        answer = row["answer"]
        if row["valid"] and bounds is not None:  # kept out of the kind's metrics
            censored[key] = bounds
            coverage[key] = row["coverage"]
        elif not row["valid"] or (probs is None if exact else not isinstance(answer, str)):
            # Invalid, or marked valid without a readable answer (a journal written elsewhere).
            category = row["invalid_category"]
            invalid.setdefault(key, Counter())[str(category or "unknown")] += 1
        elif exact:
            data[key].probs = probs
            data[key].coverage = row["coverage"]
            coverage[key] = row["coverage"]
        else:
            data[key].answers.append(answer)
            content = row["content"]
            data[key].texts.append(content if isinstance(content, str) else "")

    analysis = analyse(experiment, list(data.values()))
    rows = []
    for i, cond in enumerate(conditions):
        d = data[cond.key]
        read = d.probs is not None or cond.key in censored
        n_valid = (1 if read else 0) if exact else len(d.answers)
        k = 0
        if exact and cond.key in censored:
            rate, (low, high) = math.nan, censored[cond.key]
        elif analysis.rates is not None:  # the kind's own rate (sequences: Mean(r))
            rate, low, high = analysis.rates[i] if i < len(analysis.rates) else (math.nan,) * 3
        elif exact:
            rate = d.probs.get(cond.first, math.nan) if d.probs is not None else math.nan
            low, high = exact_rate_interval(rate)
        elif cond.answers:
            k = sum(a == cond.first for a in d.answers)
            rate, low, high = rate_summary(k, len(d.answers))
        else:  # free-form answers (numbers): no rate of a first answer
            rate = low = high = math.nan
        result = ConditionResult(
            cond.key, cond.x, rate, low, high, n_valid, totals[cond.key], k,
            coverage.get(cond.key), dict(invalid.get(cond.key, {})), cond.value,
            cond.key in censored,
        )  # fmt: skip
        rows.append(result)
    s, s_ci, metrics, lines = analysis.s, analysis.s_ci, analysis.metrics, analysis.lines
    method = analysis.s_method if math.isfinite(s) else ""
    if censored:  # S needs every rate as a point: only its bounds, and said why
        s_ci = _s_bounds(metrics, rows)
        s, metrics = math.nan, _without_s(metrics, s_ci)
        lines = [*lines, _censored_line(len(censored), len(conditions), s_ci)]
        method = "" if math.isnan(s_ci[0]) else "bounds (censored exact rates)"
    return RunResults(
        run, experiment, rows, s, s_ci,
        costs.total, metrics, lines,
        [(c, data[c.key].answers, data[c.key].probs) for c in conditions], costs.unusable,
        costs.uncounted, *journal.lost_calls(run_id),
        s_noise_floor=analysis.s_noise_floor if math.isfinite(s) else math.nan,
        s_corrected=analysis.s_corrected if math.isfinite(s) else math.nan,
        s_interval_method=method,
    )  # fmt: skip
