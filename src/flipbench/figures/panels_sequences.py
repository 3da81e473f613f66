"""The serial tests of replies with many flips, drawn (docs/sequences.md).

Left: the lag-k autocorrelation of each p's replies against lag, over the band an i.i.d.
sampler stays inside 95 % of the time (±1.96/√pairs, the large-sample null; the p-values in
`show` use the exact permutation moments). Right: runs observed / expected per p, with the
null's 95 % range (expected ± 1.96 sd) as a bar around 1: above it, the flips alternate; below
it, they come in streaks. Two flips per reply cannot show runs: their runs are fixed by the
counts, and the panel says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from flipbench.figures.common import COLORS, DIAGONAL_COLOR, legend_below, panel_grid, save, styled
from flipbench.sequence_tests import SequenceTests

#: At most this many p get their own autocorrelation line (spread over the grid).
MAX_LINES = 6
NO_RUNS = "no runs test: with two flips per reply\nthe runs are fixed by the counts"


def _spread(keys: list[str], limit: int) -> list[str]:
    if len(keys) <= limit:
        return keys
    picks = np.linspace(0, len(keys) - 1, limit).round().astype(int)
    return [keys[i] for i in sorted(set(picks))]


def serial_tests_figure(
    tests: Mapping[str, SequenceTests], out_dir: Path, stem: str, *, title: str = ""
) -> list[Path]:
    """Autocorrelation by lag with its null band, and runs observed vs expected, per p."""
    if not tests:
        raise ValueError("no serial tests to draw")
    keys = sorted(tests, key=float)
    with styled():
        fig, (acf, runs) = panel_grid(2, (4.2, 3.2), ncols=2)
        lags = sorted({a.lag for t in tests.values() for a in t.autocorrelation})
        pairs = {
            lag: float(np.median([a.n_pairs for t in tests.values() for a in t.autocorrelation
                                  if a.lag == lag and a.n_pairs]  or [0]))
            for lag in lags
        }  # fmt: skip
        if lags:
            band = np.array([1.96 / np.sqrt(pairs[lag]) if pairs[lag] else np.nan for lag in lags])
            acf.fill_between(lags, -band, band, color=DIAGONAL_COLOR, alpha=0.25, lw=0,
                             label="i.i.d. 95 % band", step=None)  # fmt: skip
            for i, key in enumerate(_spread(keys, MAX_LINES)):
                points = [(a.lag, a.rho) for a in tests[key].autocorrelation if a.rho is not None]
                if points:
                    x, y = zip(*points, strict=True)
                    acf.plot(x, y, "o-", color=COLORS[i % len(COLORS)], ms=3.5, lw=1.2,
                             label=f"p = {float(key):.0%}")  # fmt: skip
            acf.axhline(0.0, color="black", lw=0.6)
            acf.set_xticks(lags)
        acf.set_xlabel("lag k")
        acf.set_ylabel("autocorrelation ρ_k")
        acf.set_title("autocorrelation by lag")
        legend_below(acf)

        ps, ratio, lo, hi = [], [], [], []
        for key in keys:
            r = tests[key].runs
            if r.expected and r.sd is not None and r.p_value is not None:
                ps.append(float(key))
                ratio.append(r.runs / r.expected)
                lo.append(1.96 * r.sd / r.expected)
                hi.append(1.96 * r.sd / r.expected)
        if ps:
            runs.errorbar(ps, np.ones(len(ps)), yerr=[lo, hi], fmt="none", ecolor=DIAGONAL_COLOR,
                          elinewidth=4, alpha=0.6, label="i.i.d. 95 % range")  # fmt: skip
            runs.plot(ps, ratio, "o", color=COLORS[0], ms=4, label="observed / expected")
            runs.axhline(1.0, color="black", lw=0.6)
            runs.set_xlim(-0.03, 1.03)
        else:
            runs.text(0.5, 0.5, NO_RUNS, ha="center", va="center", transform=runs.transAxes)
        runs.set_xlabel("requested p")
        runs.set_ylabel("runs observed / expected")
        runs.set_title("Wald–Wolfowitz runs")
        legend_below(runs, ncol=2)
        if title:
            fig.suptitle(title)
        return save(fig, out_dir, stem)
