"""The regression's effect plot: each covariate's effects with their 95 % intervals, two panels.

Left, the effect on the log-odds of P(1) (which way models lean); right, the effect on log σ,
the spread of the models' log-odds (how far they lean either way: negative means less biased,
the seed's "larger models were less biased"). Intercepts are left out (levels, not effects); a
line at zero makes an interval that crosses it read at once as "no effect shown". matplotlib is
imported here only, when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

from flipbench.sweep.regression import SweepRegression

_PANELS = (
    ("p1", "effect on the log-odds of P(1)"),
    ("spread", "effect on log σ (< 0: less biased)"),
)


def effect_plot(
    regression: SweepRegression, out_dir: Path, stem: str = "sweep-effects"
) -> list[Path]:
    """Write `stem`.png and .svg; [] when the fit has no covariate effect."""
    from flipbench.figures.common import save, styled

    terms = [e.term for e in regression.effects if e.on == "p1" and e.term != "intercept"]
    if not terms:
        return []
    import matplotlib.pyplot as plt

    units = {e.term: e.unit for e in regression.effects}
    with styled():
        fig, axes = plt.subplots(1, 2, sharey=True, figsize=(8.0, max(2.2, 0.4 * len(terms) + 1.3)))
        ys = list(range(len(terms)))[::-1]
        for ax, (on, label) in zip(axes, _PANELS, strict=True):
            rows = [regression.effect(t, on) for t in terms]
            ax.errorbar(
                [e.mean for e in rows], ys,
                xerr=[[e.mean - e.low for e in rows], [e.high - e.mean for e in rows]],
                fmt="o", markersize=4, capsize=2, linewidth=1.0, zorder=2,
            )  # fmt: skip
            ax.axvline(0.0, color="0.4", linestyle="--", linewidth=0.8, zorder=1)
            ax.set_xlabel(f"{label}\nposterior mean, 95 % interval", fontsize=8)
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(ys, [f"{t}\n({units[t]})" for t in terms], fontsize=7)
        axes[0].set_ylim(-0.7, len(terms) - 0.3)
        s = regression.model_sd
        fig.suptitle(
            f"{regression.sweep_id}: {regression.models_used} models, {regression.draws} draws;"
            f" model σ {s.mean:.2f} [{s.low:.2f}, {s.high:.2f}]",
            fontsize=9,
        )
        return save(fig, out_dir, stem)
