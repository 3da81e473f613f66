"""The sweep's dot plot: every ranked model's mean with its 95 % interval, sorted by bias.

One row per model (least biased at the top), the requested p as a vertical line, and the
model's tie group shaded alternately, so that which models the data cannot order is visible at
a glance. matplotlib is imported here only, when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

from flipbench.sweep.ranking import SweepRanking


def dot_plot(ranking: SweepRanking, out_dir: Path, stem: str = "sweep-bias") -> list[Path]:
    """Write `stem`.png and .svg; [] when no model has a valid draw."""
    from flipbench.figures.common import save, styled

    rows = ranking.ranked
    if not rows:
        return []
    import matplotlib.pyplot as plt

    with styled():
        height = max(2.5, 0.16 * len(rows) + 1.2)
        fig, ax = plt.subplots(figsize=(7.0, height))
        ys = list(range(len(rows)))[::-1]
        for y, row in zip(ys, rows, strict=True):
            if row.group % 2 == 0:
                ax.axhspan(y - 0.5, y + 0.5, color="0.93", zorder=0)
        ax.errorbar(
            [r.mean for r in rows], ys,
            xerr=[[r.mean - r.mean_low for r in rows], [r.mean_high - r.mean for r in rows]],
            fmt="o", markersize=3, capsize=1.5, linewidth=0.8, zorder=2,
        )  # fmt: skip
        targets = sorted({round(r.target, 6) for r in rows})
        for t in targets:
            ax.axvline(t, color="0.4", linestyle="--", linewidth=0.8, zorder=1)
        ax.set_yticks(ys, [r.model for r in rows], fontsize=max(3, min(8, 700 // len(rows))))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"mean of the draws, {ranking.confidence:.0%} Wilson interval")
        ax.set_title(
            f"{ranking.sweep_id}: {len(rows)} models, least biased at the top (shading: tie groups)"
        )
        ax.grid(axis="y", visible=False)
        return save(fig, out_dir, stem)
