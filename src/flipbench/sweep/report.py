"""A sweep's section of the HTML report (`flipbench report SWEEP_ID`).

The ranking (every model, least biased first, with the tie groups and noise flags that
`sweep show` prints), the dot plot, the models that were not ranked and why, and the
regression's effects when it can be fitted, all formatted here into
`flipbench.report.sweep_view.SweepView`: the report layer below only prints it.
"""

from __future__ import annotations

import re

from flipbench.report.sections import FigureImage, draw
from flipbench.report.sweep_view import EffectLine, RankLine, SweepView, UnrankedLine
from flipbench.sweep.effects_figure import effect_plot
from flipbench.sweep.figure import dot_plot
from flipbench.sweep.ranking import ModelRank, SweepRanking
from flipbench.sweep.regression import Effect, SweepRegression

__all__ = ["anchor_of", "sweep_view"]

_READING = {
    "p1": "log-odds of P(1): which way the models lean",
    "spread": "log σ, the spread of the models' log-odds (< 0: less biased)",
}


def _effect_line(e: Effect) -> EffectLine:
    return EffectLine(
        name=f"{e.term} ({'P(1)' if e.on == 'p1' else 'spread'})", mean=f"{e.mean:.3f}",
        interval=f"[{e.low:.3f}, {e.high:.3f}]", note=f"{_READING[e.on]}; {e.unit}",
    )  # fmt: skip


def _effects(
    regression: SweepRegression | None, why_not: str | None
) -> tuple[list[EffectLine], str, list[FigureImage]]:
    if regression is None:
        return [], f"no regression: {why_not or 'not asked for'}", []
    lines = [_effect_line(e) for e in [*regression.effects, regression.model_sd]]
    left = "; ".join(f"{k} left out: {v}" for k, v in regression.left_out_terms.items())
    note = (
        f"{regression.models_used} models, {regression.draws} draws; {regression.method}"
        + (f". {left}" if left else "")
        + "".join(f". {n}" for n in regression.notes)
    )
    return lines, note, draw(lambda folder: effect_plot(regression, folder))


def _noise(r: ModelRank) -> str:
    return " ".join(t for t, on in (("≈p", r.unbiased_within_noise), ("≈next", r.ties_next)) if on)


def _rank_line(r: ModelRank) -> RankLine:
    return RankLine(
        rank=r.rank, group=r.group, model=r.model, run_id=r.run_id, mean=f"{r.mean:.3f}",
        mean_interval=f"[{r.mean_low:.3f}, {r.mean_high:.3f}]", bias=f"{r.bias:.3f}",
        bias_interval=f"[{r.bias_low:.3f}, {r.bias_high:.3f}]", noise=_noise(r), valid=r.valid,
        valid_share=f"{r.valid_share:.0%}", cost=f"${r.cost:.4g}",
        latency="—" if r.latency_s is None else f"{r.latency_s:.2f} s",
    )  # fmt: skip


def anchor_of(sweep_id: str) -> str:
    """An HTML id from a sweep id (ids are `sweep-DATE-TIME-HEX`, but stay safe for any)."""
    return "sweep-" + re.sub(r"[^A-Za-z0-9_-]", "-", sweep_id)


def sweep_view(
    ranking: SweepRanking, regression: SweepRegression | None = None, why_not: str | None = None
) -> SweepView:
    """The report's view of one ranked sweep and its regression (or why there is none)."""
    spent = f"${ranking.spent:.4f}" + (
        f" of ${ranking.max_cost:g}" if ranking.max_cost is not None else ""
    )
    unranked = [
        UnrankedLine(u.model, u.state, u.calls, u.reason or "no valid answer")
        for u in ranking.unranked
    ]
    effects, note, effect_figures = _effects(regression, why_not)
    return SweepView(
        sweep_id=ranking.sweep_id, anchor=anchor_of(ranking.sweep_id),
        experiment=ranking.experiment, status=ranking.status, message=ranking.message,
        n=ranking.n, spent=spent, ranked=[_rank_line(r) for r in ranking.ranked],
        unranked=unranked, figures=draw(lambda folder: dot_plot(ranking, folder)),
        effects=effects, effects_note=note, effect_figures=effect_figures,
    )  # fmt: skip
