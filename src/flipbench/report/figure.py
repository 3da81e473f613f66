"""The response-curve figure of a run (paper Fig. 1): r against p, the diagonal, intervals, and S.

A thin adapter from ``RunResults`` to ``panels.response_curves``, so that a run's own figure
and the paper panels share one look.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from flipbench.report.panels import Series, response_curves
from flipbench.results import RunResults


def response_curve(results: RunResults, out_dir: Path, stem: str = "response_curve") -> list[Path]:
    """Draw r(p) with Wilson intervals (a point in exact mode) and write PNG and SVG.

    A run without a single valid answer yet (all invalid, or stopped at once) has no curve:
    nothing is drawn and no path is returned, rather than failing the run's report.
    """
    conds = [c for c in results.conditions if not math.isnan(c.rate)]
    if not conds:
        return []
    exact = results.run.mode == "exact"
    series = Series(
        'exact P("1") renormalised' if exact else "observed rate (95 % Wilson)",
        np.array([c.p for c in conds]),
        np.array([c.rate for c in conds]),
        None if exact else np.array([c.ci_low for c in conds]),
        None if exact else np.array([c.ci_high for c in conds]),
        s=results.s,
        s_ci=None if exact else results.s_ci,
    )
    note = ""
    if exact:
        covs = [c.coverage for c in conds if c.coverage is not None]
        if covs:
            note = f"coverage {min(covs):.3f}–{max(covs):.3f}"
    else:
        invalid = sum(c.n_total - c.n_valid for c in results.conditions)
        total = results.n_requests
        if total:
            note = f"invalid {invalid}/{total} ({invalid / total:.1%})"
    title = f"{results.run.experiment} · {results.run.model} · {results.run.mode}"
    return response_curves([series], out_dir, stem, title=title, note=note)
