"""The arithmetic of the 100-point benchmark (docs/benchmark.md) on batches of distributions.

Every part is evaluated on a batch of B distributions per block of cells at once (B = 1 for
the point estimate, B = n_boot for a bootstrap, or a simulated calibrated model for the noise
floor), which keeps all of them one computation. ``flipbench.scoring`` builds the scores,
intervals and noise floors on it; the records are ``flipbench.scoring_models``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from flipbench.metrics import step_likeness_rows, trapezoid_rows
from flipbench.scoring_models import GAMES, PARTS, BenchmarkParts, Cell, Metrics, Readings

__all__ = [
    "EXP3_MAX_Q",
    "EXP3_P1",
    "GAME_MAX",
    "GAME_WEIGHTS",
    "RED_DEAD_BAND",
    "Block",
    "Tree",
    "block_notes",
    "blocks_of",
    "direction_tolerance",
    "evaluate",
    "first_values",
    "part_scores",
    "point_draws",
    "score_of",
    "targets",
]

FloatArray = npt.NDArray[np.float64]
Tree: TypeAlias = "dict[str, FloatArray | Tree]"

EXP3_MAX_Q = 0.6  # P("2") = q runs over [0, 0.6] because P("1") is fixed at 0.4
EXP3_P1 = 0.4
RED_DEAD_BAND = 0.05  # Exp5 red_bias ignores |avg_bias - 0.5| up to this (spec, not a reading)
_TIE_TOL = 1e-12  # rate differences below this are float noise, i.e. sign 0 (not a dead band)
# Exp4 points: (weight of clip0(1 − S), weight of the direction score d); 8 + 8 + 4 = 20.
GAME_WEIGHTS = {
    "bioinformatics": (8.0, 0.0),
    "matching_pennies": (4.0, 4.0),
    "business": (0.0, 4.0),
}
GAME_MAX = {g: w_s + w_d for g, (w_s, w_d) in GAME_WEIGHTS.items()}  # a game's most points


@dataclass(frozen=True)
class Block:
    """Cells resampled together: x (m), probs (m x K, NaN rows where n == 0), n (-1 = exact)."""

    name: str
    x: FloatArray
    probs: FloatArray
    n: npt.NDArray[np.int64]
    labels: tuple[str, ...] = ()  # Exp5: "pair order"


def _block(
    name: str, cells: Sequence[Cell], k: int, x_max: float = 1.0, labels: Sequence[str] = ()
) -> Block:
    """Stack and validate one part's cells (category count and coordinate range)."""
    probs = np.full((len(cells), k), np.nan)
    for i, c in enumerate(cells):
        if c.probs.size != k:
            raise ValueError(f"{name}: expected {k} categories, got {c.probs.size} at x={c.x}")
        if not -_TIE_TOL <= c.x <= x_max + _TIE_TOL:
            raise ValueError(f"{name}: x={c.x} outside [0, {x_max}]")
        if c.n != 0:
            probs[i] = c.probs
    x = np.array([c.x for c in cells], dtype=np.float64)
    n = np.array([-1 if c.n is None else c.n for c in cells], dtype=np.int64)
    return Block(name, x, probs, n, tuple(labels))


def blocks_of(parts: BenchmarkParts) -> dict[str, Block]:
    unknown = set(parts.exp4) - set(GAMES)
    if unknown:
        raise ValueError(f"unknown Exp4 games {sorted(unknown)}; expected {GAMES}")
    words = list(parts.exp5)
    keys = [f"{w.pair} {w.order}" for w in words]
    if len(set(keys)) != len(keys):
        raise ValueError("exp5: a (pair, order) condition appears twice")
    out = {
        "exp1": _block("exp1", parts.exp1, 2),
        "exp2": _block("exp2", parts.exp2, 4),
        "exp3": _block("exp3", parts.exp3, 3, EXP3_MAX_Q),
        "exp5": _block("exp5", [Cell(0.5, w.probs, w.n) for w in words], 2, labels=keys),
    }
    for g in GAMES:
        out[f"exp4.{g}"] = _block(f"exp4.{g}", parts.exp4.get(g, ()), 2)
    return out


def targets(b: Block) -> FloatArray:
    """The distribution a perfectly calibrated model gives every cell of a block (m x K).

    What each part measures its deviations against: Exp1 P("1") = p; Exp2 two independent flips
    of P("1") = p (categories 00, 01, 10, 11); Exp3 (0.6 − q, 0.4, q); Exp4 the optimal mix
    (x, 1 − x); Exp5 a fair (0.5, 0.5).
    """
    x = b.x[:, np.newaxis]
    part = b.name.split(".")[0]
    if part == "exp1":
        return np.hstack((1.0 - x, x))
    if part == "exp2":
        return np.hstack(((1.0 - x) ** 2, (1.0 - x) * x, x * (1.0 - x), x**2))
    if part == "exp3":
        return np.hstack((EXP3_MAX_Q - x, np.full_like(x, EXP3_P1), x))
    if part == "exp4":
        return np.hstack((x, 1.0 - x))
    return np.full((b.x.size, 2), 0.5)


def _clip0(v: FloatArray) -> FloatArray:
    return np.maximum(v, 0.0)  # NaN stays NaN


def _finite_cols(x: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Drop conditions with an undefined rate; NaN patterns are shared by all replicates."""
    keep = np.isfinite(x) & np.all(np.isfinite(r), axis=0)
    return x[keep], r[:, keep]


def _s(x: FloatArray, r: FloatArray) -> FloatArray:
    """S per replicate (metrics' algorithm); NaN with fewer than 2 usable points."""
    xk, rk = _finite_cols(x, r)
    return step_likeness_rows(xk, rk) if xk.size >= 2 else np.full(r.shape[0], np.nan)


def _area(x: FloatArray, target: FloatArray, r: FloatArray) -> FloatArray:
    """Exp3 area T(x, |r − target|) on [0, 0.6] with the deviation held flat at the ends."""
    keep = np.all(np.isfinite(r), axis=0)
    if keep.sum() < 2:
        return np.full(r.shape[0], np.nan)
    dev = np.abs(r[:, keep] - target[keep][np.newaxis, :])
    return trapezoid_rows(x[keep], dev, 0.0, EXP3_MAX_Q)


def direction_tolerance(band: float) -> float:
    """The least rate change that counts as a step up or down (the dead band, or float noise)."""
    return max(band, _TIE_TOL)


def _direction(x: FloatArray, r: FloatArray, band: float) -> FloatArray:
    """Raw direction score: mean sign of adjacent rate changes along sorted x."""
    xk, rk = _finite_cols(x, r)
    if xk.size < 2:
        return np.full(r.shape[0], np.nan)
    diff = np.diff(rk[:, np.argsort(xk, kind="stable")], axis=1)
    tol = direction_tolerance(band)
    signs = np.where(diff > tol, 1.0, np.where(diff < -tol, -1.0, 0.0))
    out: FloatArray = signs.mean(axis=1)
    return out


def _mean_finite(v: FloatArray) -> FloatArray:
    """Row mean over finite columns (column-wise NaN pattern); NaN if none is finite."""
    keep = np.all(np.isfinite(v), axis=0)
    return v[:, keep].mean(axis=1) if keep.any() else np.full(v.shape[0], np.nan)


def _slope(x: FloatArray, r: FloatArray) -> FloatArray:
    """Least-squares slope of r on x per replicate (all usable conditions weigh the same)."""
    xk, rk = _finite_cols(x, r)
    centred = xk - xk.mean() if xk.size >= 2 else xk
    spread = float(centred @ centred)
    if spread == 0.0:
        return np.full(r.shape[0], np.nan)
    out: FloatArray = (rk - rk.mean(axis=1, keepdims=True)) @ centred / spread
    return out


def _exp4_game(b: Block, probs: FloatArray, weights: tuple[float, float], band: float) -> Tree:
    """S-weight · clip0(1 − S) + d-weight · d; S is reported even where it is not scored.

    Beside the scored strict-sign d: the trend direction d_trend = (1 + sign(slope)) / 2 of the
    least-squares slope of r on x, which noise on closely spaced conditions cannot scramble
    (not scored; docs/benchmark.md).
    """
    r = probs[:, :, 0]
    s, raw = _s(b.x, r), _direction(b.x, r, band)
    d = (raw + 1.0) / 2.0
    slope = _slope(b.x, r)
    sign = np.where(slope > _TIE_TOL, 1.0, np.where(slope < -_TIE_TOL, -1.0, 0.0))
    d_trend = np.where(np.isnan(slope), np.nan, (sign + 1.0) / 2.0)
    w_s, w_d = weights
    score = (w_s * _clip0(1.0 - s) if w_s else 0.0) + (w_d * d if w_d else 0.0)
    tree: Tree = {"score": np.asarray(score, dtype=np.float64), "S": s, "direction_raw": raw}
    return {**tree, "d": d, "slope": slope, "d_trend": d_trend}


def _exp5(b: Block, probs: FloatArray, rd: Readings) -> Tree:
    """Position bias over all conditions, semantic (red-word) bias over order-averaged pairs."""
    batch = probs.shape[0]
    avg_pos = _mean_finite(np.abs(probs[:, :, 0] - 0.5))
    pairs: Tree = {}
    red_biases = []
    nan = np.full(batch, np.nan)
    idx = {lab: i for i, lab in enumerate(b.labels)}
    for pair in dict.fromkeys(lab.rsplit(" ", 1)[0] for lab in b.labels):
        i_f, i_r = idx.get(f"{pair} forward"), idx.get(f"{pair} reverse")
        r_fwd = nan if i_f is None else probs[:, i_f, 0]  # red word listed first
        r_rev = nan if i_r is None else probs[:, i_r, 1]  # red word listed second
        avg_bias = (r_fwd + r_rev) / 2.0
        red = _clip0(np.abs(avg_bias - 0.5) - RED_DEAD_BAND)
        red_biases.append(red)
        pairs[pair] = dict(
            r_red_forward=r_fwd, r_red_reverse=r_rev, avg_bias=avg_bias, red_bias=red
        )
    avg_red = _mean_finite(np.stack(red_biases, axis=1)) if red_biases else nan
    score_pos = 0.5 * _clip0(20.0 * (1.0 - 2.0 * avg_pos))
    score_sem = 0.5 * _clip0(20.0 * (1.0 - avg_red / rd.sem_divisor))
    out: Tree = dict(score=score_pos + score_sem, avg_pos_bias=avg_pos, avg_red_bias=avg_red)
    return {**out, "Score_pos": score_pos, "Score_sem": score_sem, "pairs": pairs}


def evaluate(blocks: Mapping[str, Block], draws: Mapping[str, FloatArray], rd: Readings) -> Tree:
    """Every part's sub-metrics for a batch of B distributions per block (arrays of shape B)."""
    b1 = blocks["exp1"]
    s1 = _s(b1.x, draws["exp1"][:, :, 1])

    b2, pr2 = blocks["exp2"], draws["exp2"]
    r1 = pr2[:, :, 2] + pr2[:, :, 3]  # category index = 2 * first + second
    r2 = pr2[:, :, 1] + pr2[:, :, 3]
    s_1, s_2, s_avg = _s(b2.x, r1), _s(b2.x, r2), _s(b2.x, (r1 + r2) / 2.0)

    b3, pr3 = blocks["exp3"], draws["exp3"]
    q = b3.x
    p0 = EXP3_MAX_Q - q
    a0 = _area(p0, p0, pr3[:, :, 0])
    a1 = _area(q, np.full_like(q, EXP3_P1), pr3[:, :, 1])
    a2 = _area(q, q, pr3[:, :, 2])
    s0, s1_3, s2_3 = a0 / rd.exp3_norm_diagonal, a1 / rd.exp3_norm_flat, a2 / rd.exp3_norm_diagonal

    games = {
        g: _exp4_game(blocks[f"exp4.{g}"], draws[f"exp4.{g}"], w, rd.direction_dead_band)
        for g, w in GAME_WEIGHTS.items()
    }
    score2 = 10.0 * _clip0(1.0 - s_2) + 10.0 * _clip0(1.0 - s_avg)
    score3 = (20.0 / 3.0) * (_clip0(1.0 - s0) + _clip0(1.0 - s1_3) + _clip0(1.0 - s2_3))
    exp3: Tree = dict(score=score3, A0=a0, A1=a1, A2=a2, S0=s0, S1=s1_3, S2=s2_3)
    return {
        "exp1": {"score": 20.0 * _clip0(1.0 - s1), "S": s1},
        "exp2": dict(score=score2, S1=s_1, S2=s_2, S_avg=s_avg),
        "exp3": exp3,
        "exp4": {"score": sum((score_of(t) for t in games.values()), np.zeros(1)), **games},
        "exp5": _exp5(blocks["exp5"], draws["exp5"], rd),
    }


def score_of(tree: FloatArray | Tree) -> FloatArray:
    assert isinstance(tree, dict)
    score = tree["score"]
    assert isinstance(score, np.ndarray)
    return score


def part_scores(tree: Tree) -> FloatArray:
    """(B x 6) array: the part scores in PARTS order, then their total."""
    cols = np.broadcast_arrays(*(score_of(tree[name]) for name in PARTS))
    scores = np.stack(cols, axis=1)
    return np.concatenate((scores, scores.sum(axis=1, keepdims=True)), axis=1)


def first_values(tree: Tree) -> Metrics:
    return {k: first_values(v) if isinstance(v, dict) else float(v[0]) for k, v in tree.items()}


def block_notes(b: Block) -> list[str]:
    where = [b.labels[i] if b.labels else f"x={b.x[i]:g}" for i in np.flatnonzero(b.n == 0)]
    return [f"{b.name}: {w} has no valid answers (n=0); its point is NaN, dropped" for w in where]


def point_draws(blocks: Mapping[str, Block]) -> dict[str, FloatArray]:
    return {k: b.probs[np.newaxis] for k, b in blocks.items()}
