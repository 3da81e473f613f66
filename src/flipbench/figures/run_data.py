"""Panel inputs from a run's results: its typed metrics (``metric_models``) as arrays.

The figures need arrays and the panel dataclasses; each function here returns None (or an
empty list) when the run holds no usable number for that panel yet, so the caller draws only
what exists.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flipbench.estimate import Estimate
from flipbench.figures.common import FloatArray
from flipbench.figures.panels import (
    CountSample,
    GaussianSample,
    PositionS,
    Series,
    TernaryRates,
    WordPair,
)
from flipbench.gaussfit import GaussianFit
from flipbench.metric_models import GaussianMetrics, SequenceMetrics, TernaryMetrics, WordMetrics

if TYPE_CHECKING:
    from flipbench.results import RunResults

#: Count histograms shown for one run: the paper's p = 15 % and 45 % first, then a spread.
HISTOGRAM_P = (0.15, 0.45, 0.3, 0.55, 0.7, 0.85)


def _interval(e: Estimate) -> tuple[float, float, float]:
    return (e.value, e.low, e.high)


def has_answers(results: RunResults) -> bool:
    """At least one valid answer (or exact distribution) anywhere in the run."""
    return any(c.n_valid > 0 for c in results.conditions)


def second_option(results: RunResults) -> str:
    """The option that is not the first: the other face of a game (e.g. B of A/B)."""
    others = [a for a in results.experiment.answers if a != results.experiment.first]
    return others[0] if others else "other"


@dataclass(frozen=True)
class Positions:
    """Per-position rates of a sequence run, conditions without replies removed.

    r, lo, hi have shape (D, len(p)); mean/mean_lo/mean_hi have the shape of p.
    """

    p: FloatArray
    r: FloatArray
    lo: FloatArray
    hi: FloatArray
    mean: FloatArray
    mean_lo: FloatArray
    mean_hi: FloatArray
    s_mean: tuple[float, float, float]
    s_position: FloatArray
    s_running: FloatArray

    @property
    def d(self) -> int:
        return int(self.r.shape[0])


def positions(results: RunResults) -> Positions | None:
    """The "positions" metric of a d-flips or chained run as arrays; None without replies."""
    metrics = results.metrics
    if not isinstance(metrics, SequenceMetrics):
        return None
    block = metrics.positions
    keep = [i for i, n in enumerate(block.n) if n > 0]
    if not keep:
        return None
    rates = np.array([[_interval(e) for e in block.rates[i]] for i in keep])  # (m, D, 3)
    mean = np.array([_interval(block.mean_rate[i]) for i in keep])  # (m, 3)
    return Positions(
        p=np.array([float(block.p[i]) for i in keep]),
        r=rates[:, :, 0].T,
        lo=rates[:, :, 1].T,
        hi=rates[:, :, 2].T,
        mean=mean[:, 0],
        mean_lo=mean[:, 1],
        mean_hi=mean[:, 2],
        s_mean=_interval(block.s_mean),
        s_position=np.array([e.value for e in block.s_position], dtype=float),
        s_running=np.array([e.value for e in block.s_running], dtype=float),
    )


def shown_positions(d: int) -> list[int] | None:
    """Which r_j curves to draw: all up to D = 4, else a few that the seven colours keep
    apart (first, second, middle, last); None means all."""
    if d <= 4:
        return None
    return sorted({j for j in (1, 2, 5, 10, d // 2, d) if 1 <= j <= d})


def mean_series(pos: Positions, label: str) -> Series:
    """Mean(r) against p with its bootstrap interval and S: the curve to overlay across runs."""
    s, s_lo, s_hi = pos.s_mean
    return Series(label, pos.p, pos.mean, pos.mean_lo, pos.mean_hi, s=s, s_ci=(s_lo, s_hi))


def position_s(pos: Positions, label: str) -> PositionS | None:
    """S_j and running-mean S_J as the metrics computed them; None without any finite S."""
    if not (np.isfinite(pos.s_position).any() or np.isfinite(pos.s_running).any()):
        return None
    return PositionS(pos.d, pos.s_position, pos.s_running, label)


def count_samples(results: RunResults, label: str = "") -> dict[float, CountSample]:
    """Replies' counts of "1" by p, for runs with D >= 10 (the only ones with histograms)."""
    metrics = results.metrics
    if not isinstance(metrics, SequenceMetrics) or not metrics.count_histograms:
        return {}
    by_p: dict[float, CountSample] = {}
    for h in metrics.count_histograms.values():
        observed = np.asarray(h.observed, dtype=np.int64)
        if observed.sum() <= 0:
            continue
        counts = np.repeat(np.arange(observed.size), observed).astype(np.float64)
        by_p[float(h.p)] = CountSample(float(h.p), int(h.flips), counts, label)
    return by_p


def pick_p(available: Collection[float], limit: int) -> list[float]:
    """At most ``limit`` of the p, nearest to the paper's 15 % and 45 % first, then a spread.

    p = 0 and 1 are taken only when nothing else exists: Binomial(D, p) is a point there.
    """
    inner = [p for p in available if 0.0 < p < 1.0] or list(available)
    chosen: list[float] = []
    for target in HISTOGRAM_P:
        if len(chosen) >= min(limit, len(inner)):
            break
        chosen.append(min((p for p in inner if p not in chosen), key=lambda p: abs(p - target)))
    return sorted(chosen)


def ternary_rates(results: RunResults, label: str = "") -> TernaryRates | None:
    """Observed shares of "0", "1", "2" per q with their intervals; None before any answer."""
    metrics = results.metrics
    if not isinstance(metrics, TernaryMetrics):
        return None
    q, r = [], []
    for cond in results.conditions:
        fit = metrics.per_q.get(cond.value)
        if fit is None or cond.n_valid == 0:
            continue
        q.append(cond.p)
        r.append([_interval(e) for e in fit.rates])
    if not q:
        return None
    arr = np.array(r)  # (len(q), 3 outcomes, value/low/high)
    return TernaryRates(np.array(q), arr[:, :, 0], arr[:, :, 1], arr[:, :, 2], label)


def word_pairs(results: RunResults) -> list[WordPair]:
    """Red-word share of each pair in both orders (p = 50 %), in the experiment's pair order.

    In "reverse" order the red word is listed second, so its share is 1 − r_first there.
    """
    metrics = results.metrics
    if not isinstance(metrics, WordMetrics):
        return []
    share: dict[tuple[str, str], tuple[float, float, float]] = {}
    for c in metrics.words.conditions:
        share[(c.pair, c.order)] = _interval(c.first_share)
    pairs: list[WordPair] = []
    for cond in results.experiment.conditions():
        if not cond.value.startswith("forward") or cond.x != 0.5 or cond.group is None:
            continue
        fwd = share.get((cond.group, "forward"), (math.nan,) * 3)
        f_first = share.get((cond.group, "reverse"), (math.nan,) * 3)
        rev = (1.0 - f_first[0], 1.0 - f_first[2], 1.0 - f_first[1])
        if math.isnan(fwd[0]) and math.isnan(rev[0]):
            continue
        red, other = cond.answers
        pairs.append(WordPair(red, other, fwd[0], rev[0], _ci(fwd), _ci(rev)))
    return pairs


def _ci(e: tuple[float, float, float]) -> tuple[float, float] | None:
    return None if math.isnan(e[1]) or math.isnan(e[2]) else (e[1], e[2])


def answer_numbers(results: RunResults) -> list[float]:
    """The finite numbers among the run's valid answers (a Gaussian run's draws).

    The metrics keep only a binned histogram; the panel's KS statistic and moments want
    the answers themselves.
    """
    values = []
    for _, answers, _ in results.raw:
        for answer in answers:
            try:
                value = float(answer)
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    return values


def binned_values(results: RunResults) -> list[float]:
    """Stand-in answers rebuilt from the Gaussian metric's histogram, when the raw ones are lost.

    Each bin's count is spread evenly over the bin (so the mean is unbiased) and values
    beyond the histogram sit just outside it; good to the bin width, nothing finer.
    """
    fit = _gaussian_fit(results)
    if fit is None or not fit.bin_edges:
        return []
    edges = [float(e) for e in fit.bin_edges]
    out: list[float] = []
    for lo, hi, count in zip(edges, edges[1:], fit.bin_counts, strict=False):
        out.extend(lo + (hi - lo) * (i + 0.5) / count for i in range(int(count)))
    width = edges[1] - edges[0] if len(edges) > 1 else 1.0
    out.extend([edges[0] - width / 2] * fit.below)
    out.extend([edges[-1] + width / 2] * fit.above)
    return out


def _gaussian_fit(results: RunResults) -> GaussianFit | None:
    metrics = results.metrics
    if isinstance(metrics, GaussianMetrics) and isinstance(metrics.gaussian, GaussianFit):
        return metrics.gaussian
    return None


def gaussian_sample(results: RunResults, label: str = "") -> GaussianSample | None:
    """The run's answers against the requested N(mean, sd); None when it has no number.

    Results rebuilt without their answers (``raw`` empty) fall back to stand-ins from the
    metric's histogram, and the label says so.
    """
    fit = _gaussian_fit(results)
    values = answer_numbers(results)
    if not values and fit is not None and (values := binned_values(results)):
        edges = fit.bin_edges
        note = f"rebuilt from {edges[1] - edges[0]:g}-wide bins"
        label = f"{label} ({note})" if label else f"answers {note}"
    if not values:
        return None
    mean, sd = (fit.target_mean, fit.target_sd) if fit is not None else (math.nan, math.nan)
    return GaussianSample(
        np.array(values),
        mean=100.0 if math.isnan(mean) else mean,
        sd=15.0 if math.isnan(sd) or sd <= 0 else sd,
        label=label,
    )
