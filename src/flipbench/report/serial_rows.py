"""The serial tests of a d-flips or chained run as one table row per p (docs/sequences.md).

The metrics table lists every number of `SequenceMetrics.serial` too, but at D = 10 on the
default grid that is over a thousand rows, cut at `metric_rows.MAX_ROWS`; this table keeps the
one number and p-value of each test side by side, so alternation or streaks show at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass

from flipbench.metric_models import KindMetrics, SequenceMetrics

__all__ = ["SerialRow", "serial_rows"]


@dataclass(frozen=True)
class SerialRow:
    """One p: each test's statistic against its null, and its p-value ("—": not testable)."""

    p: str
    replies: int
    runs: str
    runs_p: str
    lag1: str
    lag1_p: str
    longest: str
    longest_p: str
    bigrams: str
    bigrams_p: str


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def serial_rows(metrics: KindMetrics | None) -> list[SerialRow]:
    """The rows of a sequence run (empty for any other kind)."""
    if not isinstance(metrics, SequenceMetrics) or not metrics.serial:
        return []
    rows = []
    for key in sorted(metrics.serial, key=float):
        t = metrics.serial[key]
        r, lr, bi = t.runs, t.longest_run, t.bigrams
        lag1 = t.autocorrelation[0] if t.autocorrelation else None
        rows.append(
            SerialRow(
                p=f"{float(key):.0%}", replies=t.n_sequences,
                runs=f"{r.runs} / {r.expected:.1f}" if r.expected is not None else "—",
                runs_p=_p(r.p_value),
                lag1=f"{lag1.rho:+.3f}" if lag1 is not None and lag1.rho is not None else "—",
                lag1_p=_p(lag1.p_value if lag1 is not None else None),
                longest=(f"{lr.mean_observed:.2f} / {lr.mean_expected:.2f}"
                         if lr.mean_observed is not None and lr.mean_expected is not None
                         else "—"),
                longest_p=_p(lr.p_value),
                bigrams=f"χ² {bi.chi2:.1f}" if bi.chi2 is not None else "—",
                bigrams_p=_p(bi.p_value),
            )
        )  # fmt: skip
    return rows
