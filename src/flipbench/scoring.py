"""The 100-point calibration benchmark (docs/benchmark.md), as pure functions.

Five parts of 20 points each, computed from categorical per-condition data (``Cell`` /
``WordCell``) so that sampled runs and exact distributions go through one path. Every part
is evaluated on a batch of B distributions at once (``flipbench.scoring_eval``: B = 1 for the
point estimate, B = n_boot for the bootstrap, B = n_sim for the noise floor), which keeps them
consistent and makes 1000 replicates cheap.

Undefined values are NaN internally (a condition with no valid answers, a curve with fewer
than 2 usable points) and propagate to the part and the total; ``to_dict`` writes them as
None so the JSON stays strict. Where the scoring table leaves a choice, ``Readings`` holds it.
The input and result records live in ``flipbench.scoring_models`` and are re-exported here;
the resampling is ``flipbench.bootstrap``'s, shared with every other interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from flipbench.bootstrap import (
    bias_aware_interval,
    check_boot,
    generator,
    hull_interval,
    redraw_shares,
    replicate_interval,
    toward_target,
)
from flipbench.scoring_eval import (
    GAME_MAX,
    Block,
    Tree,
    block_notes,
    blocks_of,
    evaluate,
    first_values,
    part_scores,
    point_draws,
    targets,
)
from flipbench.scoring_models import (
    GAMES,
    PARTS,
    BenchmarkIntervals,
    BenchmarkParts,
    BenchmarkScore,
    Cell,
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
    "noise_floor_benchmark",
    "score_benchmark",
]

FloatArray = npt.NDArray[np.float64]
MAX_SCORES = (20.0,) * len(PARTS) + (100.0,)  # the parts in PARTS order, then the total


def score_benchmark(parts: BenchmarkParts, readings: Readings | None = None) -> BenchmarkScore:
    """Point estimate of all five parts and the total from the observed/exact distributions."""
    rd = readings or Readings()
    blocks = blocks_of(parts)
    tree = evaluate(blocks, point_draws(blocks), rd)
    metrics = first_values(tree)
    out: dict[str, PartScore] = {}
    for name in PARTS:
        m = metrics[name]
        assert isinstance(m, dict)
        score = m.pop("score")
        assert isinstance(score, float)
        notes = [n for k, b in blocks.items() if k.split(".")[0] == name for n in block_notes(b)]
        pairs = m.get("pairs", {})
        for pair, pm in pairs.items() if isinstance(pairs, dict) else ():
            if isinstance(pm, dict) and math.isnan(float(pm["red_bias"])):  # type: ignore[arg-type]
                notes.append(f"exp5: {pair} lacks a usable order; left out of avg_red_bias")
        if math.isnan(score):
            notes.append(f"{name}: score undefined (part not run or too few usable conditions)")
        out[name] = PartScore(score, m, tuple(notes))
    total = float(part_scores(tree)[0, -1])  # same arithmetic as the bootstrap's total
    return BenchmarkScore(out, total, rd.as_dict())


def _resample(b: Block, rng: np.random.Generator, n_boot: int, probs: FloatArray) -> FloatArray:
    """n_boot multinomial redraws of every sampled cell from ``probs`` (its observed shares, or
    another distribution per cell); exact and empty cells stay as they are."""
    out = np.broadcast_to(b.probs, (n_boot, *b.probs.shape)).copy()
    sampled = b.n > 0
    if sampled.any():
        pv = np.clip(probs[sampled], 0.0, None)
        pv /= pv.sum(axis=1, keepdims=True)
        out[:, sampled] = redraw_shares(rng, b.n[sampled], pv, n_boot)
    return out


def _nearest(b: Block) -> Block:
    """The block with every sampled cell moved towards its calibrated target as far as the
    data allow (``bootstrap.toward_target``); exact and empty cells unchanged."""
    sampled = b.n > 0
    probs = b.probs.copy()
    if sampled.any():
        probs[sampled] = toward_target(b.probs[sampled], b.n[sampled], targets(b)[sampled])
    return Block(b.name, b.x, probs, b.n, b.labels)


def _replicates(
    parts: BenchmarkParts,
    n_boot: int,
    seed: int,
    confidence: float,
    readings: Readings | None,
    near: bool = False,
) -> tuple[Tree, Tree, tuple[Tree, Tree] | None]:
    """(replicate tree, point tree, and with ``near`` the same two at the model nearest
    calibration): one pass of n_boot replicates for every metric.

    Blocks are redrawn in a fixed order from one generator (the nearest model's after all the
    observed ones), so for one seed every caller sees the same replicates and
    ``bootstrap_metrics`` agrees with ``bootstrap_benchmark``.
    """
    check_boot(n_boot, confidence)
    rd = readings or Readings()
    blocks = blocks_of(parts)
    rng = generator(seed)
    draws = {k: _resample(b, rng, n_boot, b.probs) for k, b in blocks.items()}
    trees = evaluate(blocks, draws, rd), evaluate(blocks, point_draws(blocks), rd)
    if not near:
        return (*trees, None)
    moved = {k: _nearest(b) for k, b in blocks.items()}
    near_draws = {k: _resample(b, rng, n_boot, b.probs) for k, b in moved.items()}
    near_trees = evaluate(moved, near_draws, rd), evaluate(moved, point_draws(moved), rd)
    return (*trees, near_trees)


def bootstrap_benchmark(
    parts: BenchmarkParts,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    readings: Readings | None = None,
) -> BenchmarkIntervals:
    """Intervals for every part and the total, all replicates evaluated at once.

    Resampling a condition's n valid answers with replacement is a multinomial draw from its
    observed shares, so each sampled cell is redrawn that way; exact cells have no sampling
    error and stay fixed, so a part made only of exact cells gets a point interval. Noise only
    ever adds to |r − target|, so scores are biased down, most for a calibrated model, and the
    percentile interval of these replicates misses such a model (kept as ``percentile``). The
    reported interval (``intervals``) is ``bootstrap.bias_aware_interval``: a second set of
    replicates from the cells moved towards calibration as far as their Wilson intervals allow
    bounds the bias; clipped to [0, 20] per part and [0, 100] for the total.
    ``corrected``: the score minus its bootstrap bias, clipped likewise.
    """
    tree, point_tree, near = _replicates(parts, n_boot, seed, confidence, readings, near=True)
    assert near is not None
    scores, point = part_scores(tree), part_scores(point_tree)[0]
    near_scores, near_point = part_scores(near[0]), part_scores(near[1])[0]
    names = (*PARTS, "total")
    intervals, percentile, corrected = {}, {}, {}
    for j, name in enumerate(names):
        col, value = scores[:, j], float(point[j])
        bounds = (0.0, MAX_SCORES[j])
        near_j = (float(near_point[j]), near_scores[:, j])
        intervals[name] = bias_aware_interval(value, col, near_j, confidence, bounds)
        percentile[name] = replicate_interval(col, value, confidence)
        fixed = 2.0 * value - float(col.mean()) if np.isfinite(col).all() else math.nan
        corrected[name] = min(max(fixed, 0.0), MAX_SCORES[j]) if math.isfinite(fixed) else fixed
    return BenchmarkIntervals(intervals, n_boot, confidence, seed, percentile, corrected)


def noise_floor_benchmark(
    parts: BenchmarkParts, n_sim: int = 1000, seed: int = 0, readings: Readings | None = None
) -> dict[str, float]:
    """What a perfectly calibrated model is expected to score at these grids and n.

    Every sampled cell is redrawn n_sim times from its calibrated target
    (``scoring_eval.targets``) with the cell's own n; an exact cell is the target itself, and
    an empty one stays empty. The mean of each part's score (and of the total) over the draws:
    about 91.4 for the whole benchmark at n = 100, against 99.995 exact (docs/benchmark.md).
    """
    check_boot(n_sim, 0.95)
    rd = readings or Readings()
    blocks = blocks_of(parts)
    rng = generator(seed)
    calibrated = {}
    for key, b in blocks.items():
        probs = np.where(np.isnan(b.probs), np.nan, targets(b))
        calibrated[key] = Block(b.name, b.x, probs, b.n, b.labels)
    draws = {k: _resample(b, rng, n_sim, b.probs) for k, b in calibrated.items()}
    scores = part_scores(evaluate(calibrated, draws, rd))
    return {name: float(scores[:, j].mean()) for j, name in enumerate((*PARTS, "total"))}


#: Sub-metrics that noise does not bias (linear in the rates: their percentile interval covers)
#: or whose percentile interval already covers (d_trend, a sign of the fitted slope); every
#: other sub-metric is built from |rate − target| (or, d, from signs noise scrambles) and
#: gets ``bootstrap.hull_interval``.
PERCENTILE_METRICS = frozenset({"slope", "d_trend", "r_red_forward", "r_red_reverse", "avg_bias"})
_METRIC_BOUNDS = {
    "direction_raw": (-1.0, 1.0),
    "d": (0.0, 1.0),
    "Score_pos": (0.0, 10.0),
    "Score_sem": (0.0, 10.0),
}  # the others are deviations (areas, S, biases): [0, inf); a game's score: [0, its points]


def _leaf_intervals(
    tree: Tree, point: Tree, near: tuple[Tree, Tree], confidence: float, game: str = ""
) -> dict[str, Any]:
    """The tree with every array leaf replaced by its (low, high) interval."""
    out: dict[str, Any] = {}
    near_tree, near_point = near
    for key, value in tree.items():
        p, nv, np_ = point[key], near_tree[key], near_point[key]
        if isinstance(value, dict):
            assert isinstance(p, dict) and isinstance(nv, dict) and isinstance(np_, dict)
            sub = key if key in GAME_MAX else game
            out[key] = _leaf_intervals(value, p, (nv, np_), confidence, sub)
            continue
        assert isinstance(p, np.ndarray) and isinstance(nv, np.ndarray)
        assert isinstance(np_, np.ndarray)
        col = np.broadcast_to(value, (value.size,)).astype(np.float64)
        if key in PERCENTILE_METRICS:
            out[key] = replicate_interval(col, float(p[0]), confidence)
            continue
        bounds = _METRIC_BOUNDS.get(key, (0.0, GAME_MAX[game] if key == "score" else math.inf))
        near_col = np.broadcast_to(nv, (nv.size,)).astype(np.float64)
        near_j = (float(np_[0]), near_col)
        out[key] = hull_interval(float(p[0]), col, near_j, confidence, bounds)
    return out


def bootstrap_metrics(
    parts: BenchmarkParts,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    readings: Readings | None = None,
) -> dict[str, Any]:
    """Intervals for every sub-metric of every part, from one pass of replicates.

    ``out[part]`` mirrors ``score_benchmark(parts).to_dict()["parts"][part]["metrics"]``
    with each number replaced by (low, high): NaN where the metric is undefined in the
    replicates, the point itself where it has no spread (exact cells). The replicates are
    ``bootstrap_benchmark``'s two sets for the same seed (the part scores themselves are its
    job). A sub-metric built from |rate − target| (S, the Exp3 areas, the biases and their
    scores, a game's score) is biased upward by noise, so its percentile interval misses
    models near calibration; it gets ``bootstrap.hull_interval`` (the bias-aware interval
    joined with the percentile one), as does the strict-sign direction score, which noise
    pulls towards 0.5. ``PERCENTILE_METRICS`` keep the percentile interval. Coverage is
    measured in tests/test_coverage.py; it is below 0.93 for d on closely spaced conditions
    and for avg_red_bias (and Score_sem) when a pair's bias sits at the dead band's edge
    (docs/benchmark.md).
    """
    tree, point, near = _replicates(parts, n_boot, seed, confidence, readings, near=True)
    assert near is not None
    out: dict[str, Any] = {}
    for name in PARTS:
        part, part_point = tree[name], point[name]
        near_part, near_point = near[0][name], near[1][name]
        assert isinstance(part, dict) and isinstance(part_point, dict)
        assert isinstance(near_part, dict) and isinstance(near_point, dict)
        metrics = {k: v for k, v in part.items() if k != "score"}
        out[name] = _leaf_intervals(metrics, part_point, (near_part, near_point), confidence)
    return out
