"""The matrix's figure: ΔS of every intervention against `direct`, with its interval.

One row per (experiment, model, intervention) that has a ΔS, grouped by experiment and model,
a vertical line at 0 (no change) — left of it, closer to the requested distribution. Drawn
with matplotlib, imported here only.
"""

from __future__ import annotations

import math
from pathlib import Path

from flipbench.matrix.table import MatrixTable


def delta_plot(table: MatrixTable, out_dir: Path, stem: str = "matrix-delta-s") -> list[Path]:
    """Write `stem`.png and .svg; [] when no cell has a ΔS."""
    rows = [r for r in table.rows if r.delta_s is not None and not math.isnan(r.delta_s.value)]
    if not rows:
        return []
    import matplotlib.pyplot as plt

    from flipbench.figures.common import save, styled

    with styled():
        fig, ax = plt.subplots(figsize=(7.0, max(2.2, 0.32 * len(rows) + 1.2)))
        ys = list(range(len(rows)))[::-1]
        for y, r in zip(ys, rows, strict=True):
            e = r.delta_s
            assert e is not None
            known = not (math.isnan(e.low) or math.isnan(e.high))
            xerr = [[e.value - e.low], [e.high - e.value]] if known else None
            ax.errorbar([e.value], [y], xerr=xerr, fmt="o", markersize=4, capsize=2,
                        color="C0" if known and e.high < 0 else "C1" if known and e.low > 0
                        else "0.4")  # fmt: skip
        ax.axvline(0.0, color="0.3", linestyle="--", linewidth=0.8)
        labels = [f"{r.intervention}  ({r.experiment}, {r.model})" for r in rows]
        ax.set_yticks(ys, labels, fontsize=max(5, min(9, 400 // len(rows))))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel("ΔS = S(intervention) − S(direct), 95 % interval (< 0: better)")
        ax.set_title(f"{table.matrix_id}: each intervention against direct")
        ax.grid(axis="y", visible=False)
        return save(fig, out_dir, stem)
