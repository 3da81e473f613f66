"""A hierarchical logistic regression of a sweep's draws on its models' covariates.

Each valid draw is a Bernoulli outcome (the condition's first answer, "1" for the fair coin, vs
the other). Model m's draws share logit P(1) = x_m·β + σ_m·z_m with z_m ~ N(0, 1): a per-model
random effect that absorbs what the covariates do not explain (without it, 50 draws of one
model would count as 50 independent pieces of evidence about a model-level covariate, and the
intervals would be far too narrow). Its scale is log σ_m = x_m·γ, so the fit answers two
questions: β, does a covariate move P(1) (the direction of the lean), and γ, does it change how
far models lean either way, i.e. their bias |P(1) − 0.5|. The seed's one finding, "larger models
were less biased", is a γ effect: models lean both ways, so a covariate that shrinks the lean
has no β effect at all, and a regression on P(1) alone cannot see it.

The fit: each model's random effect is integrated out exactly (a 1-D integral per model, on a
fine grid), the log posterior of (β, γ) with N(0, 2²) priors on β and N(0, 1) on γ is maximised
(scipy's BFGS with the analytic gradient), and the posterior is approximated by the Gaussian at
its mode (the Hessian by differences of the gradient). With hundreds of models and a handful of
parameters that approximation is close; the 95 % intervals' coverage is measured by simulation
(tests/test_sweep_regression.py, docs/sweep.md).

Why not a library: statsmodels' BinomialBayesMixedGLM (75 MB) was measured first. Its
variational fit (mean-field) gave intervals a third of the right width, and its Laplace fit
finds the *joint* mode over the random effects, which sits at σ → 0 (σ^-M is unbounded) or,
started well, at a σ 40 % too small, with 80 % coverage. bambi/PyMC (713 MB, ~55 s a fit,
mostly compiling) was too heavy for a default. numpy and scipy, already required, do it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from flipbench.errors import FlipbenchError
from flipbench.sweep.covariates import ModelCovariates

Z95 = 1.959963984540054
#: An organisation gets its own effect when it has at least this many models.
MIN_ORG_MODELS = 5
#: A covariate is used by default when it is known for at least this share of the models.
MIN_KNOWN_SHARE = 0.5
#: Prior standard deviations: effects on the log-odds, effects on log σ.
PRIOR_SD_P1, PRIOR_SD_SPREAD = 2.0, 1.0
#: The grid the random effect is integrated on (z in standard deviations).
_Z = np.linspace(-8.0, 8.0, 321)
_LOG_W = -0.5 * _Z**2 + math.log(_Z[1] - _Z[0]) - 0.5 * math.log(2 * math.pi)

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Term:
    """A covariate as a column: its value for a model (None: unknown) and what one unit means."""

    name: str
    unit: str
    value: Callable[[ModelCovariates], float | None]
    centred: bool = True


def _log10(x: float | None, floor: float = 0.0) -> float | None:
    return None if x is None else math.log10(max(x, floor))


def _flag(x: bool | None) -> float | None:
    return None if x is None else float(x)


TERMS: dict[str, Term] = {
    t.name: t
    for t in (
        Term("log10_params", "per 10× total parameters", lambda c: _log10(c.params_b)),
        Term("moe", "mixture-of-experts vs dense", lambda c: _flag(c.moe), centred=False),
        Term("reasoning", "takes a reasoning parameter", lambda c: _flag(c.reasoning), False),
        Term("log10_context", "per 10× context length", lambda c: _log10(c.context_length)),
        Term(
            "log10_price",
            "per 10× completion price (USD/M tokens, ≥ 0.01)",
            lambda c: _log10(c.completion_price, 0.01),
        ),
        Term("created_year", "per year of creation date", lambda c: c.created_year),
    )
}


class ModelDraws(BaseModel):
    """One model's valid draws: `ones` of `n` were the first answer."""

    model: str
    ones: int
    n: int


class Effect(BaseModel):
    """One effect: posterior mean, sd and 95 % interval. `on` says of what: `p1`, the log-odds
    of P(1); `spread`, log σ (negative: the models lean less, i.e. are less biased)."""

    on: Literal["p1", "spread"]
    term: str
    unit: str
    mean: float
    sd: float
    low: float
    high: float


class SweepRegression(BaseModel):
    """A sweep's regression (`sweep regress --format json` writes this)."""

    sweep_id: str
    method: str
    models_used: int
    draws: int
    effects: list[Effect]
    model_sd: Effect  # σ at the average covariates (exp of the spread intercept), log-odds
    left_out_terms: dict[str, str]
    left_out_models: dict[str, str]
    notes: list[str]

    def effect(self, term: str, on: str = "p1") -> Effect:
        return next(e for e in self.effects if e.term == term and e.on == on)


def choose_terms(
    covs: Sequence[ModelCovariates], requested: Sequence[str] | None
) -> tuple[list[Term], dict[str, str]]:
    """The terms to fit (the requested ones, or every usable one) and why others are left out."""
    left: dict[str, str] = {}
    orgs: dict[str, int] = {}
    for c in covs:
        orgs[c.organisation] = orgs.get(c.organisation, 0) + 1
    big = sorted((o for o, k in orgs.items() if k >= MIN_ORG_MODELS), key=lambda o: (-orgs[o], o))
    baseline = f"organisations with fewer than {MIN_ORG_MODELS} models"
    if big and sum(orgs[o] for o in big) == len(covs):
        baseline, big = big[0], big[1:]  # the largest is the reference, or they are collinear
    org_terms = {
        f"org:{o}": Term(f"org:{o}", f"organisation {o} vs {baseline}", _is_org(o), False)
        for o in sorted(big)
    }
    available = {**TERMS, **org_terms}
    if requested:
        unknown = [r for r in requested if r not in available and r != "org"]
        if unknown:
            raise FlipbenchError(
                f"unknown term(s) {', '.join(unknown)}; choose from {', '.join(TERMS)}, org"
            )
        wanted = [
            n for n in available if n in requested or (n[:4] == "org:" and "org" in requested)
        ]
        return [available[n] for n in wanted], left
    terms = []
    for name, term in available.items():
        known = [v for v in (term.value(c) for c in covs) if v is not None]
        if len(known) < MIN_KNOWN_SHARE * len(covs):
            left[name] = f"known for {len(known)} of {len(covs)} models (name it to fit it anyway)"
        elif len(set(known)) < 2:
            left[name] = "the same for every model"
        else:
            terms.append(term)
    return terms, left


def _is_org(org: str) -> Callable[[ModelCovariates], float | None]:
    return lambda c: float(c.organisation == org)


def _log_posterior(theta: Floats, x: Floats, ones: Floats, n: Floats) -> tuple[float, Floats]:
    """The log posterior of (β, γ) with every random effect integrated out, and its gradient."""
    p = x.shape[1]
    beta, gamma = theta[:p], theta[p:]
    sigma = np.exp(x @ gamma)  # per model
    eta = (x @ beta)[:, None] + sigma[:, None] * _Z[None, :]  # models × grid
    loglik = ones[:, None] * eta - n[:, None] * np.logaddexp(0.0, eta) + _LOG_W[None, :]
    top = loglik.max(axis=1, keepdims=True)
    weights = np.exp(loglik - top)
    total = weights.sum(axis=1, keepdims=True)
    value = float(np.sum(np.log(total[:, 0]) + top[:, 0]))
    weights /= total  # each model's posterior over the grid
    score = ones[:, None] - n[:, None] / (1.0 + np.exp(-eta))  # d loglik / d eta
    d_loc = np.sum(weights * score, axis=1)
    d_scale = np.sum(weights * score * _Z[None, :], axis=1) * sigma
    value -= (
        0.5 * float(beta @ beta) / PRIOR_SD_P1**2 + 0.5 * float(gamma @ gamma) / PRIOR_SD_SPREAD**2
    )
    grad = np.concatenate(
        [x.T @ d_loc - beta / PRIOR_SD_P1**2, x.T @ d_scale - gamma / PRIOR_SD_SPREAD**2]
    )
    return value, grad


def _fit(x: Floats, ones: Floats, n: Floats) -> tuple[Floats, Floats, list[str]]:
    """The posterior mode and the covariance of the Gaussian approximation there."""
    from scipy.optimize import minimize

    p = x.shape[1]
    logit = np.log((ones + 0.5) / (n - ones + 0.5))  # start: the empirical logits' mean, spread
    start = np.zeros(2 * p)
    start[0] = float(np.mean(logit))
    start[p] = 0.5 * math.log(max(float(np.var(logit) - np.mean(1 / (ones + 0.5))), 0.05))
    result = minimize(
        lambda t: tuple(-v for v in _log_posterior(t, x, ones, n)),
        start, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 2000},
    )  # fmt: skip
    mode = np.asarray(result.x, dtype=float)
    notes = []
    grad_norm = float(np.max(np.abs(_log_posterior(mode, x, ones, n)[1])))
    if grad_norm > 1e-3:
        notes.append(f"the search for the mode stopped early (gradient {grad_norm:.2g})")
    hess = np.empty((2 * p, 2 * p))
    for i in range(2 * p):
        step = np.zeros(2 * p)
        step[i] = 1e-4
        hess[i] = (
            _log_posterior(mode + step, x, ones, n)[1] - _log_posterior(mode - step, x, ones, n)[1]
        ) / 2e-4
    hess = 0.5 * (hess + hess.T)
    try:
        cov: Floats = np.asarray(np.linalg.inv(-hess), dtype=np.float64)
    except np.linalg.LinAlgError:
        cov = np.full_like(hess, np.nan)
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
        raise FlipbenchError(
            "the regression's posterior has no peak at its mode, so it has no interval: a term"
            " the data say nothing about? (name fewer with --term)"
        )
    return mode, cov, notes


def fit_regression(
    sweep_id: str,
    draws: Sequence[ModelDraws],
    covs: Sequence[ModelCovariates],
    requested: Sequence[str] | None = None,
) -> SweepRegression:
    """Fit the regression (ModelDraws and ModelCovariates in the same order)."""
    terms, left_terms = choose_terms(covs, requested)
    used: list[tuple[ModelDraws, list[float]]] = []
    left_models: dict[str, str] = {}
    for d, c in zip(draws, covs, strict=True):
        values = [t.value(c) for t in terms]
        missing = [t.name for t, v in zip(terms, values, strict=True) if v is None]
        if d.n == 0:
            left_models[d.model] = "no valid draw"
        elif missing:
            left_models[d.model] = f"unknown {', '.join(missing)}"
        else:
            used.append((d, [float(v) for v in values if v is not None]))
    if len(used) < 2 * (len(terms) + 1) + 3:
        raise FlipbenchError(
            f"only {len(used)} model(s) have every covariate of"
            f" {', '.join(t.name for t in terms) or '(none)'} and a valid draw; too few for a"
            " regression (fewer --term, or a --covariates file)"
        )
    cols = np.array([v for _, v in used], dtype=float).reshape(len(used), len(terms))
    for j, t in enumerate(terms):
        if t.centred:
            cols[:, j] -= cols[:, j].mean()
    x = np.column_stack([np.ones(len(used)), cols])
    ones = np.array([d.ones for d, _ in used], dtype=float)
    n = np.array([d.n for d, _ in used], dtype=float)
    mode, cov, notes = _fit(x, ones, n)
    sds = np.sqrt(np.diag(cov))
    labels = [("intercept", "at the average covariates")] + [(t.name, t.unit) for t in terms]
    parts: list[tuple[Literal["p1", "spread"], tuple[str, str]]] = [
        ("p1", label) for label in labels
    ] + [("spread", label) for label in labels]
    effects = [
        Effect(on=on, term=name, unit=unit, mean=float(mode[i]), sd=float(sds[i]),
               low=float(mode[i] - Z95 * sds[i]), high=float(mode[i] + Z95 * sds[i]))
        for i, (on, (name, unit)) in enumerate(parts)
    ]  # fmt: skip
    k = len(labels)
    model_sd = Effect(
        on="spread", term="model sd", unit="σ of the models' log-odds at the average covariates",
        mean=math.exp(mode[k]), sd=float(sds[k]) * math.exp(mode[k]),
        low=math.exp(mode[k] - Z95 * sds[k]), high=math.exp(mode[k] + Z95 * sds[k]),
    )  # fmt: skip
    return SweepRegression(
        sweep_id=sweep_id,
        method="logit-normal mixed model, random effects integrated exactly, posterior mode"
        " with its Gaussian (Laplace) approximation",
        models_used=len(used), draws=int(n.sum()), effects=effects, model_sd=model_sd,
        left_out_terms=left_terms, left_out_models=left_models, notes=notes,
    )  # fmt: skip
