"""`flipbench report`: one self-contained HTML file of one or more runs (or a benchmark).

Self-contained means it can be mailed, archived or opened offline and shows the same thing:
figures are inline PNG (`data:` URIs), the style and the one small script are inline, and
nothing refers to the network — no font, stylesheet, script or image URL. The page's own
Content-Security-Policy says so too (`default-src 'none'`, images only from `data:`, the
script only by its hash), so a browser would refuse anything else even if it were there.

Every string from a model, a server or a journal reaches the page through jinja2 with
autoescape; `_finalize` also masks credentials and makes control characters visible
(`safety`), as the terminal output does. Only the script and the figure URIs built here are
trusted markup. The reply text is shown as text, never as HTML or as a link.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from flipbench import __version__
from flipbench.benchmark_models import BenchmarkSummary, ScoreEstimate
from flipbench.errors import FlipbenchError
from flipbench.report.matrix_view import MatrixView
from flipbench.report.samples import DEFAULT_SAMPLES
from flipbench.report.sections import Overlay, RunSection, overlay_section, run_section
from flipbench.report.sweep_view import SweepView
from flipbench.results import RunResults, compute_results
from flipbench.safety import mask_secrets, terminal_safe
from flipbench.store import Journal

__all__ = ["DEFAULT_SAMPLES", "build_report", "render_report", "write_report"]

_TEMPLATES = "templates"


def _finalize(value: Any) -> Any:
    """Every `{{ … }}` before it is escaped: stored text with credentials masked and control
    characters visible; our own markup (the script) as it is."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return terminal_safe(mask_secrets(value))
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return value


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flipbench.report", _TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["zip"] = zip
    return env


@cache
def _script() -> tuple[Markup, str]:
    """The page's one script and its CSP hash source (`'sha256-…'`)."""
    text = resources.files("flipbench.report").joinpath(_TEMPLATES, "report.js").read_text()
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii")
    return Markup(text), f"'sha256-{digest}'"  # our own file, never data


@dataclass(frozen=True)
class BenchmarkView:
    """A benchmark's score table, as the report shows it."""

    bench_id: str
    model: str
    complete: bool
    rows: list[tuple[str, str, str, str, str]]  # part, score, interval, noise floor, corrected


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _score_row(name: str, e: ScoreEstimate, of: float) -> tuple[str, str, str, str, str]:
    lo, hi = e.ci
    interval = "—" if lo is None or hi is None else f"[{lo:.1f}, {hi:.1f}]"
    return name, f"{_score(e.score)} / {of:g}", interval, _score(e.noise_floor), _score(e.corrected)


def benchmark_view(summary: BenchmarkSummary) -> BenchmarkView:
    rows = [
        _score_row(name, part, part.max_score) for name, part in summary.parts.by_name().items()
    ]
    rows.append(_score_row("total", summary.total, summary.max_total))
    return BenchmarkView(summary.bench_id, summary.model, summary.complete, rows)


def _overview(r: RunResults, anchor: str) -> dict[str, Any]:
    lo, hi = r.s_ci
    total = r.n_requests
    bad = sum(c.n_total - c.n_valid for c in r.conditions)
    return {
        "anchor": anchor,
        "run_id": r.run.run_id,
        "experiment": r.run.experiment,
        "model": r.run.model,
        "mode": r.run.mode,
        "status": r.run.display_status,
        "n": r.experiment.n,
        "grid": r.experiment.grid,
        "temperature": r.experiment.temperature,
        "s": "—" if math.isnan(r.s) else f"{r.s:.3f}",
        "s_ci": "" if math.isnan(lo) or lo == hi else f"[{lo:.3f}, {hi:.3f}]",
        "floor": "—" if math.isnan(r.s_noise_floor) else f"{r.s_noise_floor:.3f}",
        "invalid": f"{bad / total:.1%}" if total else "—",
    }


def _overlays(results: Sequence[RunResults], force: bool) -> list[Overlay]:
    """One overlay per experiment that two or more of the runs share and that compares."""
    groups: dict[str, list[RunResults]] = {}
    for r in results:
        groups.setdefault(r.run.experiment, []).append(r)
    found = [overlay_section(runs, force=force) for runs in groups.values() if len(runs) > 1]
    return [o for o in found if o is not None]


def build_report(
    journal: Journal,
    run_ids: Sequence[str],
    *,
    benchmarks: Sequence[BenchmarkSummary] = (),
    sweeps: Sequence[SweepView] = (),
    matrices: Sequence[MatrixView] = (),
    samples: int = DEFAULT_SAMPLES,
    force: bool = False,
    title: str | None = None,
) -> dict[str, Any]:
    """The report's data: every run's section, the overview, overlays, benchmarks and sweeps.

    `force` overlays runs of one experiment even when their definitions differ. A sweep comes
    as its view (`flipbench.sweep.report`), not as its runs: hundreds of run sections would
    bury the ranking; each model's run has its own report.
    """
    if not run_ids and not sweeps and not matrices:
        raise FlipbenchError("name at least one run (see `flipbench runs`)")
    if len(set(run_ids)) != len(run_ids):
        raise FlipbenchError("a run is named twice")
    results = [compute_results(journal, run_id) for run_id in run_ids]
    sections: list[RunSection] = [
        run_section(journal, r, i, samples) for i, r in enumerate(results, 1)
    ]
    if title is None:
        title = (
            f"flipbench matrix {matrices[0].matrix_id}" if len(matrices) == 1 and not results
            else f"flipbench sweep {sweeps[0].sweep_id}" if len(sweeps) == 1 and not results
            else f"flipbench benchmark {benchmarks[0].bench_id}" if len(benchmarks) == 1
            else f"flipbench report: {results[0].run.run_id}" if len(results) == 1
            else f"flipbench report: {len(results)} runs"
            + (f", {len(sweeps)} sweep(s)" if sweeps else "")
        )  # fmt: skip
    return {
        "title": title,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "version": __version__,
        "overview": [_overview(s.results, s.anchor) for s in sections],
        "overlays": _overlays(results, force),
        "benchmarks": [benchmark_view(b) for b in benchmarks],
        "sweeps": list(sweeps),
        "matrices": list(matrices),
        "runs": sections,
    }


def render_report(context: dict[str, Any]) -> str:
    """The HTML page of `build_report`'s data."""
    script, script_hash = _script()
    template = _environment().get_template("report.html.j2")
    return template.render(**context, script=script, script_hash=script_hash)


def write_report(
    db: Path,
    run_ids: Sequence[str],
    out: Path,
    *,
    benchmarks: Sequence[BenchmarkSummary] = (),
    sweeps: Sequence[SweepView] = (),
    matrices: Sequence[MatrixView] = (),
    samples: int = DEFAULT_SAMPLES,
    force: bool = False,
) -> Path:
    """Write the report of `run_ids` in journal `db` to `out` (its folder is created)."""
    with Journal(db, create=False) as journal:
        context = build_report(
            journal, run_ids, benchmarks=benchmarks, sweeps=sweeps, matrices=matrices,
            samples=samples, force=force,
        )  # fmt: skip
    page = render_report(context)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
