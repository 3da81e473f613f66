"""The 100-point calibration benchmark (docs/benchmark.md), as pure functions.

Five parts of 20 points each, computed from categorical per-condition data (``Cell`` /
``WordCell``) so that sampled runs and exact distributions go through one path. Every part
is evaluated on a batch of B distributions at once (B = 1 for the point estimate, B = n_boot
for the bootstrap), which keeps the two consistent and makes 1000 replicates cheap.

Undefined values are NaN internally (a condition with no valid answers, a curve with fewer
than 2 usable points) and propagate to the part and the total; ``to_dict`` writes them as
None so the JSON stays strict. Where the scoring table leaves a choice, ``Readings`` holds it.
The input and result records live in ``flipbench.scoring_models`` and are re-exported here;
the resampling is ``flipbench.bootstrap``'s, shared with every other interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from flipbench.bootstrap import check_boot, generator, redraw_shares, replicate_interval
from flipbench.metrics import step_likeness_rows, trapezoid_rows
from flipbench.scoring_models import (
    GAMES,
    PARTS,
    BenchmarkIntervals,
    BenchmarkParts,
    BenchmarkScore,
    Cell,
    Metrics,
    PartScore,
    Readings,
    WordCell,
)

__all__ = [
    "GAMES",
    "PARTS",
    "BenchmarkIntervals",
    "BenchmarkParts",
    "BenchmarkScore",
    "Cell",
    "PartScore",
    "Readings",
    "WordCell",
    "bootstrap_benchmark",
    "bootstrap_metrics",
    "score_benchmark",
]

FloatArray = npt.NDArray[np.float64]
_Tree: TypeAlias = "dict[str, FloatArray | _Tree]"

EXP3_MAX_Q = 0.6  # P("2") = q runs over [0, 0.6] because P("1") is fixed at 0.4
EXP3_P1 = 0.4
_RED_DEAD_BAND = 0.05  # Exp5 red_bias ignores |avg_bias - 0.5| up to this (spec, not a reading)
_TIE_TOL = 1e-12  # rate differences below this are float noise, i.e. sign 0 (not a dead band)
# Exp4 points: (weight of clip0(1 − S), weight of the direction score d); 8 + 8 + 4 = 20.
_GAME_WEIGHTS = {
    "bioinformatics": (8.0, 0.0),
    "matching_pennies": (4.0, 4.0),
    "business": (0.0, 4.0),
}


@dataclass(frozen=True)
class _Block:
    """Cells resampled together: x (m), probs (m x K, NaN rows where n == 0), n (-1 = exact)."""

    name: str
    x: FloatArray
    probs: FloatArray
    n: npt.NDArray[np.int64]
    labels: tuple[str, ...] = ()  # Exp5: "pair order"


def _block(
    name: str, cells: Sequence[Cell], k: int, x_max: float = 1.0, labels: Sequence[str] = ()
) -> _Block:
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
    return _Block(name, x, probs, n, tuple(labels))


def _blocks(parts: BenchmarkParts) -> dict[str, _Block]:
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


def _direction(x: FloatArray, r: FloatArray, band: float) -> FloatArray:
    """Raw direction score: mean sign of adjacent rate changes along sorted x."""
    xk, rk = _finite_cols(x, r)
    if xk.size < 2:
        return np.full(r.shape[0], np.nan)
    diff = np.diff(rk[:, np.argsort(xk, kind="stable")], axis=1)
    tol = max(band, _TIE_TOL)
    signs = np.where(diff > tol, 1.0, np.where(diff < -tol, -1.0, 0.0))
    out: FloatArray = signs.mean(axis=1)
    return out


def _mean_finite(v: FloatArray) -> FloatArray:
    """Row mean over finite columns (column-wise NaN pattern); NaN if none is finite."""
    keep = np.all(np.isfinite(v), axis=0)
    return v[:, keep].mean(axis=1) if keep.any() else np.full(v.shape[0], np.nan)


def _exp4_game(b: _Block, probs: FloatArray, weights: tuple[float, float], band: float) -> _Tree:
    """S-weight · clip0(1 − S) + d-weight · d; S is reported even where it is not scored."""
    r = probs[:, :, 0]
    s, raw = _s(b.x, r), _direction(b.x, r, band)
    d = (raw + 1.0) / 2.0
    w_s, w_d = weights
    score = (w_s * _clip0(1.0 - s) if w_s else 0.0) + (w_d * d if w_d else 0.0)
    return {"score": np.asarray(score, dtype=np.float64), "S": s, "direction_raw": raw, "d": d}


def _exp5(b: _Block, probs: FloatArray, rd: Readings) -> _Tree:
    """Position bias over all conditions, semantic (red-word) bias over order-averaged pairs."""
    batch = probs.shape[0]
    avg_pos = _mean_finite(np.abs(probs[:, :, 0] - 0.5))
    pairs: _Tree = {}
    red_biases = []
    nan = np.full(batch, np.nan)
    idx = {lab: i for i, lab in enumerate(b.labels)}
    for pair in dict.fromkeys(lab.rsplit(" ", 1)[0] for lab in b.labels):
        i_f, i_r = idx.get(f"{pair} forward"), idx.get(f"{pair} reverse")
        r_fwd = nan if i_f is None else probs[:, i_f, 0]  # red word listed first
        r_rev = nan if i_r is None else probs[:, i_r, 1]  # red word listed second
        avg_bias = (r_fwd + r_rev) / 2.0
        red = _clip0(np.abs(avg_bias - 0.5) - _RED_DEAD_BAND)
        red_biases.append(red)
        pairs[pair] = dict(
            r_red_forward=r_fwd, r_red_reverse=r_rev, avg_bias=avg_bias, red_bias=red
        )
    avg_red = _mean_finite(np.stack(red_biases, axis=1)) if red_biases else nan
    score_pos = 0.5 * _clip0(20.0 * (1.0 - 2.0 * avg_pos))
    score_sem = 0.5 * _clip0(20.0 * (1.0 - avg_red / rd.sem_divisor))
    out: _Tree = dict(score=score_pos + score_sem, avg_pos_bias=avg_pos, avg_red_bias=avg_red)
    return {**out, "Score_pos": score_pos, "Score_sem": score_sem, "pairs": pairs}


def _evaluate(blocks: Mapping[str, _Block], draws: Mapping[str, FloatArray], rd: Readings) -> _Tree:
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
        for g, w in _GAME_WEIGHTS.items()
    }
    score2 = 10.0 * _clip0(1.0 - s_2) + 10.0 * _clip0(1.0 - s_avg)
    score3 = (20.0 / 3.0) * (_clip0(1.0 - s0) + _clip0(1.0 - s1_3) + _clip0(1.0 - s2_3))
    exp3: _Tree = dict(score=score3, A0=a0, A1=a1, A2=a2, S0=s0, S1=s1_3, S2=s2_3)
    return {
        "exp1": {"score": 20.0 * _clip0(1.0 - s1), "S": s1},
        "exp2": dict(score=score2, S1=s_1, S2=s_2, S_avg=s_avg),
        "exp3": exp3,
        "exp4": {"score": sum((_score(t) for t in games.values()), np.zeros(1)), **games},
        "exp5": _exp5(blocks["exp5"], draws["exp5"], rd),
    }


def _score(tree: FloatArray | _Tree) -> FloatArray:
    assert isinstance(tree, dict)
    score = tree["score"]
    assert isinstance(score, np.ndarray)
    return score


def _part_scores(tree: _Tree) -> FloatArray:
    """(B x 6) array: the part scores in PARTS order, then their total."""
    cols = np.broadcast_arrays(*(_score(tree[name]) for name in PARTS))
    scores = np.stack(cols, axis=1)
    return np.concatenate((scores, scores.sum(axis=1, keepdims=True)), axis=1)


def _first(tree: _Tree) -> Metrics:
    return {k: _first(v) if isinstance(v, dict) else float(v[0]) for k, v in tree.items()}


def _notes(b: _Block) -> list[str]:
    where = [b.labels[i] if b.labels else f"x={b.x[i]:g}" for i in np.flatnonzero(b.n == 0)]
    return [f"{b.name}: {w} has no valid answers (n=0); its point is NaN, dropped" for w in where]


def _point_draws(blocks: Mapping[str, _Block]) -> dict[str, FloatArray]:
    return {k: b.probs[np.newaxis] for k, b in blocks.items()}


def score_benchmark(parts: BenchmarkParts, readings: Readings | None = None) -> BenchmarkScore:
    """Point estimate of all five parts and the total from the observed/exact distributions."""
    rd = readings or Readings()
    blocks = _blocks(parts)
    tree = _evaluate(blocks, _point_draws(blocks), rd)
    metrics = _first(tree)
    out: dict[str, PartScore] = {}
    for name in PARTS:
        m = metrics[name]
        assert isinstance(m, dict)
        score = m.pop("score")
        assert isinstance(score, float)
        notes = [n for k, b in blocks.items() if k.split(".")[0] == name for n in _notes(b)]
        pairs = m.get("pairs", {})
        for pair, pm in pairs.items() if isinstance(pairs, dict) else ():
            if isinstance(pm, dict) and math.isnan(float(pm["red_bias"])):  # type: ignore[arg-type]
                notes.append(f"exp5: {pair} lacks a usable order; left out of avg_red_bias")
        if math.isnan(score):
            notes.append(f"{name}: score undefined (part not run or too few usable conditions)")
        out[name] = PartScore(score, m, tuple(notes))
    total = float(_part_scores(tree)[0, -1])  # same arithmetic as the bootstrap's total
    return BenchmarkScore(out, total, rd.as_dict())


def _resample(b: _Block, rng: np.random.Generator, n_boot: int) -> FloatArray:
    """n_boot multinomial redraws of every sampled cell; exact and empty cells stay fixed."""
    out = np.broadcast_to(b.probs, (n_boot, *b.probs.shape)).copy()
    sampled = b.n > 0
    if sampled.any():
        pv = np.clip(b.probs[sampled], 0.0, None)
        pv /= pv.sum(axis=1, keepdims=True)
        out[:, sampled] = redraw_shares(rng, b.n[sampled], pv, n_boot)
    return out


def _replicates(
    parts: BenchmarkParts, n_boot: int, seed: int, confidence: float, readings: Readings | None
) -> tuple[dict[str, _Block], _Tree, _Tree]:
    """(blocks, replicate tree, point tree): one pass of n_boot replicates for every metric.

    Blocks are redrawn in a fixed order from one generator, so for one seed every caller
    sees the same replicates and ``bootstrap_metrics`` agrees with ``bootstrap_benchmark``.
    """
    check_boot(n_boot, confidence)
    rd = readings or Readings()
    blocks = _blocks(parts)
    rng = generator(seed)
    draws = {k: _resample(b, rng, n_boot) for k, b in blocks.items()}
    return blocks, _evaluate(blocks, draws, rd), _evaluate(blocks, _point_draws(blocks), rd)


def bootstrap_benchmark(
    parts: BenchmarkParts,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    readings: Readings | None = None,
) -> BenchmarkIntervals:
    """Percentile intervals for every part and the total, all replicates evaluated at once.

    Resampling a condition's n valid answers with replacement is a multinomial draw from its
    observed shares, so each sampled cell is redrawn that way; exact cells have no sampling
    error and stay fixed, so a part made only of exact cells gets a point interval.
    Caveat: noise only ever adds to |r − target|, so for a nearly calibrated model the
    replicates score lower than the point and the interval can lie wholly below it.
    """
    _, tree, point_tree = _replicates(parts, n_boot, seed, confidence, readings)
    scores = _part_scores(tree)
    point = _part_scores(point_tree)[0]
    intervals = {
        name: replicate_interval(scores[:, j], float(point[j]), confidence)
        for j, name in enumerate((*PARTS, "total"))
    }
    return BenchmarkIntervals(intervals, n_boot, confidence, seed)


def _leaf_intervals(tree: _Tree, point: _Tree, confidence: float) -> dict[str, Any]:
    """The tree with every array leaf replaced by its (low, high) interval."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        p = point[key]
        if isinstance(value, dict):
            assert isinstance(p, dict)
            out[key] = _leaf_intervals(value, p, confidence)
        else:
            assert isinstance(p, np.ndarray)
            col = np.broadcast_to(value, (value.size,)).astype(np.float64)
            out[key] = replicate_interval(col, float(p[0]), confidence)
    return out


def bootstrap_metrics(
    parts: BenchmarkParts,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    readings: Readings | None = None,
) -> dict[str, Any]:
    """Percentile intervals for every sub-metric of every part, from one pass of replicates.

    ``out[part]`` mirrors ``score_benchmark(parts).to_dict()["parts"][part]["metrics"]``
    with each number replaced by (low, high): NaN where the metric is undefined in the
    replicates, the point itself where it has no spread (exact cells). The replicates are
    ``bootstrap_benchmark``'s for the same seed, so the two report the same redraws; the
    part scores themselves are ``bootstrap_benchmark``'s job. Same caveat: a deviation
    metric such as S or an Exp3 area can only grow with noise, so for a nearly calibrated
    model its interval may lie above the point.
    """
    _, tree, point = _replicates(parts, n_boot, seed, confidence, readings)
    out: dict[str, Any] = {}
    for name in PARTS:
        part, part_point = tree[name], point[name]
        assert isinstance(part, dict) and isinstance(part_point, dict)
        metrics = {k: v for k, v in part.items() if k != "score"}
        out[name] = _leaf_intervals(metrics, part_point, confidence)
    return out
