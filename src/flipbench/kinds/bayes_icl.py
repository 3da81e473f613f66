"""The Bayesian battery's in-context kind: a model's P(heads) against Bayes' rule.

`bayes-icl` conditions (tasks/bayes_icl.py) each show one flip sequence; the Bayesian answer
is the Beta(1, 1) posterior predictive of that very sequence, (1 + h) / (2 + N). Comparing the
model with θ mixes two errors — its own and the sequence's sampling noise (a perfect
Bayesian's TVD to θ is the *posterior floor*, not 0) — so each condition is scored against
both: TVD to θ, TVD to the posterior predictive (the model's own error) and KL both ways
(smoothed, `bayes.kl`). Per N the mean TVDs sit beside the floor; the prior pseudo-counts
(α₀, β₀) that best explain the statement-free conditions are fitted by maximum likelihood
(`bayes.fit_prior`, bootstrap over sequences).

`bayes-chain` conditions are the prefixes of sequences whose bias switches; the memory
factor γ (pseudo-counts multiplied by γ before each update) is fitted to the model's curves
(`bayes.fit_gamma`, bootstrap over sequences).

One kind serves both experiments (a run of either holds only its own conditions); what a
condition is comes from its prompt fields in the definition's specs, read by key. The
numbers are `bayes`'s; this module only gathers them per condition and per N.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from flipbench import bayes
from flipbench.analysis import Analysis, ConditionData, number_text
from flipbench.estimate import Estimate
from flipbench.kinds.base import ExperimentKind
from flipbench.metric_models import KindMetrics
from flipbench.tasks.definition import ResolvedExperiment

if TYPE_CHECKING:
    from flipbench.figures.panels_bayes_icl import ChainCurve, IclPoint
    from flipbench.results import RunResults

#: The prior of the Bayesian reference: Beta(1, 1), the uniform prior of the spec.
ALPHA0 = 1.0
#: Bootstrap replicates of the fits (over sequences).
N_BOOT_GAMMA = 1000
N_BOOT_PRIOR = 500
#: The prior fit's box is [1e-3, 1e5] (`bayes.fit_prior`): a pseudo-count this close to its top
#: means no finite optimum (a model that ignores the evidence).
PRIOR_EDGE = 0.99e5


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IclCondition(_Model):
    """One in-context prompt: its sequence, the model's reading and the Bayesian answer."""

    theta: float
    n: int
    heads: int
    tails: int
    sequence: int
    statement: str  # none / agreeing / contradicting
    p_heads: float  # the model's, renormalised over heads/tails
    coverage: float | None  # exact mode: the mass of heads + tails before renormalising
    posterior: float  # (α₀ + h) / (α₀ + β₀ + N), α₀ = β₀ = 1
    tvd_theta: float
    tvd_posterior: float
    kl_posterior_model: float  # KL(posterior ‖ model), smoothed
    kl_model_posterior: float  # KL(model ‖ posterior), smoothed


class IclLength(_Model):
    """The conditions of one N and one statement: mean ± sd over θ and sequences, and the
    posterior floor (the mean TVD to θ a perfect Bayesian is expected to score there)."""

    n: int
    statement: str
    conditions: int
    tvd_theta_mean: float
    tvd_theta_sd: float
    tvd_posterior_mean: float
    tvd_posterior_sd: float
    posterior_floor: float


class PriorEstimate(_Model):
    """(α₀, β₀) fitted by maximum likelihood on the statement-free conditions."""

    alpha0: Estimate
    beta0: Estimate
    n_conditions: int
    confidence: float


class ChainSequence(_Model):
    """One posterior-chain sequence: its flips (H/T), the model's P(heads) after each prefix
    0…L (NaN where not read) and the fitted memory model's."""

    sequence: int
    flips: str
    switch: int
    thetas: tuple[float, float]  # the bias before and after the switch
    p_heads: list[float]
    fitted: list[float]


class GammaEstimate(_Model):
    gamma: Estimate
    l1: float  # mean L1 distance between the fitted model's curves and the model's
    n_sequences: int
    confidence: float


class BayesMetrics(KindMetrics):
    """The in-context battery: per condition, per N (and statement), the fitted prior; the
    posterior chain's sequences and fitted γ."""

    conditions: dict[str, IclCondition]
    by_length: list[IclLength]
    prior: PriorEstimate | None
    chain: list[ChainSequence]
    gamma: GammaEstimate | None


def p_heads(data: ConditionData) -> float:
    """The model's P(heads) renormalised over heads/tails (a sampled run: the share); NaN
    without an answer."""
    probs, n = data.distribution()
    if n == 0:
        return math.nan
    share = dict(zip(data.condition.answers, probs, strict=True))
    total = share["heads"] + share["tails"]
    return float(share["heads"] / total) if total > 0 else math.nan


def icl_condition(fields: dict[str, str], data: ConditionData) -> IclCondition:
    n, heads = int(fields["n"]), int(fields["heads"])
    theta = float(fields["theta"]) / 100
    p = p_heads(data)
    post = float(bayes.posterior_predictive(np.array([heads, n - heads]), ALPHA0)[0])
    model, want, truth = (np.array([x, 1 - x]) for x in (p, post, theta))
    return IclCondition(
        theta=theta, n=n, heads=heads, tails=n - heads, sequence=int(fields["sequence"]),
        statement=fields["stated"], p_heads=p, coverage=data.coverage, posterior=post,
        tvd_theta=float(bayes.tvd(model, truth)), tvd_posterior=float(bayes.tvd(model, want)),
        kl_posterior_model=float(bayes.kl(want, model)),
        kl_model_posterior=float(bayes.kl(model, want)),
    )  # fmt: skip


def by_length(conditions: Sequence[IclCondition]) -> list[IclLength]:
    groups: dict[tuple[str, int], list[IclCondition]] = defaultdict(list)
    for c in conditions:
        groups[(c.statement, c.n)].append(c)
    out = []
    for (statement, n), group in sorted(groups.items(), key=lambda g: (_order(g[0][0]), g[0][1])):
        to_theta = np.array([c.tvd_theta for c in group])
        to_post = np.array([c.tvd_posterior for c in group])
        floor = np.mean([bayes.posterior_floor(c.theta, n, 2, ALPHA0) for c in group])
        out.append(
            IclLength(
                n=n,
                statement=statement,
                conditions=len(group),
                tvd_theta_mean=float(to_theta.mean()),
                tvd_theta_sd=_sd(to_theta),
                tvd_posterior_mean=float(to_post.mean()),
                tvd_posterior_sd=_sd(to_post),
                posterior_floor=float(floor),
            )
        )
    return out


def _order(statement: str) -> int:
    return ("none", "agreeing", "contradicting").index(statement)


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def prior_fit(conditions: Sequence[IclCondition]) -> PriorEstimate | None:
    """`bayes.fit_prior` on the statement-free conditions, resampling whole sequences."""
    free = [c for c in conditions if c.statement == "none"]
    if len({(c.heads, c.tails) for c in free}) < 2:
        return None
    labels = {key: i for i, key in enumerate(sorted({(c.theta, c.sequence) for c in free}))}
    fit = bayes.fit_prior(
        np.array([c.heads for c in free]), np.array([c.tails for c in free]),
        np.array([c.p_heads for c in free]),
        np.array([labels[(c.theta, c.sequence)] for c in free]), n_boot=N_BOOT_PRIOR, seed=0,
    )  # fmt: skip
    return PriorEstimate(
        alpha0=Estimate(fit.alpha0, fit.alpha_low, fit.alpha_high),
        beta0=Estimate(fit.beta0, fit.beta_low, fit.beta_high),
        n_conditions=fit.n_conditions, confidence=fit.confidence,
    )  # fmt: skip


def chain_sequences(
    experiment: ResolvedExperiment, data: Sequence[ConditionData]
) -> tuple[list[ChainSequence], GammaEstimate | None]:
    """Each chain sequence's curve, and γ fitted on the sequences read at every prefix."""
    specs = {s.key: s.fields for s in experiment.specs}
    curves: dict[int, tuple[str, int, np.ndarray]] = {}
    thetas = (math.nan, math.nan)
    for d in data:
        fields = specs[d.condition.key]
        if "switch" not in fields:
            continue
        index = int(fields["sequence"])
        if index not in curves:
            flips = fields["sequence_flips"]
            curves[index] = (flips, int(fields["switch"]), np.full(len(flips) + 1, math.nan))
            thetas = (float(fields["theta1"]) / 100, float(fields["theta2"]) / 100)
        curves[index][2][int(fields["k"])] = p_heads(d)
    complete = [i for i, (_, _, c) in sorted(curves.items()) if not np.isnan(c).any()]
    gamma = None
    if complete:
        flips01 = [_ones(curves[i][0]) for i in complete]
        fit = bayes.fit_gamma(flips01, [curves[i][2] for i in complete], n_boot=N_BOOT_GAMMA)
        gamma = GammaEstimate(
            gamma=Estimate(fit.gamma, fit.low, fit.high), l1=fit.l1,
            n_sequences=fit.n_sequences, confidence=fit.confidence,
        )  # fmt: skip
    out = []
    for index, (flips, switch, curve) in sorted(curves.items()):
        fitted = (
            bayes.memory_curve(_ones(flips), gamma.gamma.value).tolist()
            if gamma is not None
            else [math.nan] * len(curve)
        )
        out.append(ChainSequence(sequence=index, flips=flips, switch=switch, thetas=thetas,
                                 p_heads=curve.tolist(), fitted=fitted))  # fmt: skip
    return out, gamma


def _ones(flips: str) -> np.ndarray:
    return np.array([f == "H" for f in flips], dtype=int)


def show_lines(metrics: BayesMetrics) -> list[str]:
    lines = []
    for row in metrics.by_length:
        lines.append(
            f"{row.statement} N={row.n}: TVD to θ {number_text(row.tvd_theta_mean)}"
            f" ± {number_text(row.tvd_theta_sd)} (posterior floor"
            f" {number_text(row.posterior_floor)}), TVD to posterior"
            f" {number_text(row.tvd_posterior_mean)} ± {number_text(row.tvd_posterior_sd)}"
            f" ({row.conditions} conditions)"
        )
    covs = [c.coverage for c in metrics.conditions.values() if c.coverage is not None]
    if covs:
        lines.append(f"coverage of heads + tails: median {np.median(covs):.3f},"
                     f" range {min(covs):.3f}–{max(covs):.3f}")  # fmt: skip
    if (prior := metrics.prior) is not None:
        edge = max(prior.alpha0.value, prior.beta0.value) >= PRIOR_EDGE
        lines.append(
            f"prior fit (max. likelihood, {prior.confidence:.0%} bootstrap over sequences):"
            f" α₀ {_estimate(prior.alpha0)}, β₀ {_estimate(prior.beta0)}"
            f" ({prior.n_conditions} conditions)"
            + ("; at the fit's bound: no finite prior explains the answers" if edge else "")
        )
    if (gamma := metrics.gamma) is not None:
        lines.append(
            f"memory γ {_estimate(gamma.gamma)} ({gamma.confidence:.0%} bootstrap over"
            f" {gamma.n_sequences} sequences; mean L1 {gamma.l1:.3f}; γ = 1 is Bayes)"
        )
    elif metrics.chain:
        lines.append("memory γ: no sequence read at every prefix yet")
    return lines


def _estimate(e: Estimate) -> str:
    return f"{_g(e.value)} [{_g(e.low)}, {_g(e.high)}]"


def _g(x: float) -> str:
    """Three decimals for a pseudo-count or γ, four significant digits beyond 1000."""
    return number_text(x) if not math.isfinite(x) or abs(x) < 1000 else f"{x:.4g}"


class BayesIclKind(ExperimentKind):
    names = ("bayes-icl",)

    def analyse(self, experiment: ResolvedExperiment, data: Sequence[ConditionData]) -> Analysis:
        specs = {s.key: s.fields for s in experiment.specs}
        conditions = {
            d.condition.key: icl_condition(specs[d.condition.key], d)
            for d in data
            if "theta" in specs[d.condition.key] and not math.isnan(p_heads(d))
        }
        chain, gamma = chain_sequences(experiment, data)
        metrics = BayesMetrics(
            conditions=conditions, by_length=by_length(list(conditions.values())),
            prior=prior_fit(list(conditions.values())), chain=chain, gamma=gamma,
        )  # fmt: skip
        return Analysis(math.nan, (math.nan, math.nan), metrics, show_lines(metrics))

    def rate_label(self, experiment: ResolvedExperiment) -> str:
        return 'P("heads")'

    def figures(self, results: RunResults, out_dir: Path) -> list[Path]:
        from flipbench.figures.figure import run_title
        from flipbench.figures.panels_bayes_icl import chain_panel, icl_panels

        metrics = results.metrics
        if not isinstance(metrics, BayesMetrics):
            return []
        title = run_title(results)
        paths: list[Path] = []
        if metrics.conditions:
            paths += icl_panels(icl_points(metrics), out_dir, title=title)
        if metrics.chain:
            gamma = metrics.gamma.gamma if metrics.gamma is not None else None
            paths += chain_panel(chain_curves(metrics), gamma, out_dir, title=title)
        return paths

    def overlay(
        self, runs: Sequence[RunResults], labels: Sequence[str], out_dir: Path, stem: str
    ) -> list[Path]:
        return []  # one run's figures only (several models: compare their `show` lines)


def icl_points(metrics: BayesMetrics) -> list[IclPoint]:
    """The per-condition readings as the panels take them (plain numbers)."""
    from flipbench.figures.panels_bayes_icl import IclPoint

    return [
        IclPoint(
            c.theta,
            c.n,
            c.statement,
            c.p_heads,
            c.tvd_theta,
            c.tvd_posterior,
            bayes.posterior_floor(c.theta, c.n, 2, ALPHA0),
        )
        for c in metrics.conditions.values()
    ]


def chain_curves(metrics: BayesMetrics) -> list[ChainCurve]:
    from flipbench.figures.panels_bayes_icl import ChainCurve

    return [
        ChainCurve(s.sequence, s.switch, np.array(s.p_heads), np.array(s.fitted), s.thetas)
        for s in metrics.chain
    ]


BAYES_ICL = BayesIclKind()
