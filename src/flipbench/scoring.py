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
    linear_rate_interval,
    mover_bounds,
    redraw_shares,
    replicate_interval,
    toward_target,
)
from flipbench.scoring_eval import (
    GAME_MAX,
    GAME_WEIGHTS,
    RED_DEAD_BAND,
    Block,
    Tree,
    block_notes,
    blocks_of,
    direction_tolerance,
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
#: gets ``bootstrap.hull_interval``. The slope's percentile interval is replaced afterwards
#: (``_closed_form``), as are the ends that test inversion moves.
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
    pulls towards 0.5. ``PERCENTILE_METRICS`` keep the percentile interval. Then
    ``_closed_form``: the slope gets a Wald interval, and d, its raw mean sign, a score made of
    d alone, avg_red_bias and Score_sem reach their bound when a test does not reject it.
    Coverage is measured in tests/test_coverage.py (docs/benchmark.md).
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
    _closed_form(blocks_of(parts), point, out, confidence, readings or Readings())
    return out


def _closed_form(
    blocks: dict[str, Block], point: Tree, out: dict[str, Any], confidence: float, rd: Readings
) -> None:
    """Replace, in ``out``, the intervals that the bootstrap measurably misses (in place).

    * A game's ``slope`` is linear in the rates: ``bootstrap.linear_rate_interval``.
    * The strict-sign d sits at its bound 1 for any rising curve, and noise on closely spaced
      conditions scrambles the signs of such a curve's small steps, so no resampled interval
      reaches 1 often enough (0.855 for bioinformatics). By test inversion, d = 1 (every step
      rises by more than the tolerance) belongs in the interval unless some step is
      significantly below it: each adjacent difference's one-sided MOVER upper bound at
      1 − α/(m − 1) (Bonferroni over the m − 1 steps, so the test's size is at most α). The
      same for d = 0 (every step falls). A game scored by d alone (business) takes d's ends;
      one scored by S and d (matching pennies) reaches, when d's end does, the score of that
      end of d with the matching end of S's interval.
    * avg_red_bias is 0 exactly when every pair's avg_bias lies within the dead band; the
      truth at the band's edge is where its noise bias is largest. Unless some pair's
      avg_bias interval (MOVER, 1 − α/q two-sided over the q pairs) misses the band, the
      interval reaches 0 (and Score_sem's its 10).
    Elsewhere the bootstrap's ends stay; the point estimates never move.
    """
    alpha = 1.0 - confidence
    exp4 = point["exp4"]
    assert isinstance(exp4, dict)
    for game, (w_s, w_d) in GAME_WEIGHTS.items():
        b, ci, values = blocks[f"exp4.{game}"], out["exp4"][game], exp4[game]
        assert isinstance(values, dict)
        keep = np.isfinite(b.x) & np.all(np.isfinite(b.probs), axis=1)
        order = np.argsort(b.x[keep], kind="stable")
        x, r, n = b.x[keep][order], b.probs[keep, 0][order], b.n[keep][order]
        if x.size < 2:
            continue
        centred = x - x.mean()
        spread = float(centred @ centred)
        slope = float(np.asarray(values["slope"])[0])
        if spread > 0.0:
            ci["slope"] = linear_rate_interval(slope, r, n, centred / spread, confidence)
        steps = np.diff(np.eye(x.size), axis=0)  # row k: r[k + 1] − r[k]
        low, high = mover_bounds(r, n, steps, 1.0 - 2.0 * alpha / steps.shape[0])
        tol = direction_tolerance(rd.direction_dead_band)
        rises, falls = bool(np.all(high > tol)), bool(np.all(low < -tol))
        for key, bottom in (("d", 0.0), ("direction_raw", -1.0)):
            lo, hi = ci[key]
            if not (math.isnan(lo) or math.isnan(hi)):
                ci[key] = (bottom if falls else lo, 1.0 if rises else hi)
        if w_s == 0.0:
            ci["score"] = (w_d * ci["d"][0], w_d * ci["d"][1])
        elif w_d > 0.0 and not math.isnan(ci["score"][0]):
            lo, hi = ci["score"]
            s_lo, s_hi = ci["S"]
            top = w_s * max(1.0 - s_lo, 0.0) + w_d if rises else hi
            bottom = w_s * max(1.0 - s_hi, 0.0) if falls else lo
            ci["score"] = (min(lo, bottom), max(hi, min(top, GAME_MAX[game])))
    _red_bias_bound(blocks["exp5"], out["exp5"], confidence)


def _red_bias_bound(b: Block, ci: dict[str, Any], confidence: float) -> None:
    """avg_red_bias down to 0 (Score_sem up to 10) unless some pair is off the dead band."""
    idx = {lab: i for i, lab in enumerate(b.labels)}
    red: list[float] = []
    trials: list[int] = []
    for pair in dict.fromkeys(lab.rsplit(" ", 1)[0] for lab in b.labels):
        i_f, i_r = idx.get(f"{pair} forward"), idx.get(f"{pair} reverse")
        if i_f is None or i_r is None:
            continue
        shares = (b.probs[i_f, 0], b.probs[i_r, 1])  # the red word's share in both orders
        if np.isfinite(shares).all():
            red.extend(float(v) for v in shares)
            trials.extend((int(b.n[i_f]), int(b.n[i_r])))
    q = len(red) // 2
    lo, hi = ci["avg_red_bias"]
    if q == 0 or math.isnan(lo) or math.isnan(hi):
        return
    halves = np.repeat(np.eye(q), 2, axis=1) / 2.0  # row i: the mean of pair i's two shares
    rates, n = np.array(red), np.array(trials, dtype=np.int64)
    low, high = mover_bounds(rates, n, halves, 1.0 - (1.0 - confidence) / q)
    if np.all(low <= 0.5 + RED_DEAD_BAND) and np.all(high >= 0.5 - RED_DEAD_BAND):
        ci["avg_red_bias"] = (0.0, hi)
        ci["Score_sem"] = (ci["Score_sem"][0], _METRIC_BOUNDS["Score_sem"][1])
