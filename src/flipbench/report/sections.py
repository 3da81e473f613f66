"""What one run contributes to an HTML report, gathered from the journal before rendering.

Everything a template reads is computed here as plain data (numbers, strings, figure bytes),
so that the template only lays it out: no journal access, no arithmetic, and no string from a
model or a server that is not escaped on the way out (the template engine does that).
Figures are the kinds' own (`run_figures`), drawn to a scratch folder and inlined as PNG.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.report.compare import Difference, SideBySide, check_comparable, side_by_side
from flipbench.report.metric_rows import MetricRow, metric_rows
from flipbench.report.run_figures import figures_for, overlay_figures
from flipbench.report.samples import SampleSet, sample_rows
from flipbench.report.serial_rows import SerialRow, serial_rows
from flipbench.results import RunResults
from flipbench.safety import clean_json
from flipbench.store import Journal

__all__ = ["FigureImage", "Overlay", "RunSection", "overlay_section", "run_section"]


@dataclass(frozen=True)
class FigureImage:
    """One figure, inline: a caption and a `data:image/png;base64,…` URI."""

    caption: str
    data_uri: str


def draw(draw_into: Any) -> list[FigureImage]:
    """Call `draw_into(folder)` on a scratch folder and inline the PNGs it returns."""
    with tempfile.TemporaryDirectory(prefix="flipbench-report-") as scratch:
        paths: list[Path] = draw_into(Path(scratch))
        return [
            FigureImage(
                p.stem.replace("_", " "),
                "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii"),
            )
            for p in paths
            if p.suffix == ".png"
        ]


@dataclass(frozen=True)
class ConditionLine:
    """A row of the per-condition table."""

    condition: str
    value: str
    rate: str
    low: str
    high: str
    n_valid: int
    n_total: int
    invalid_share: str
    invalid: str
    coverage: str


@dataclass
class RunSection:
    """One run of the report."""

    anchor: str
    results: RunResults
    headline: list[str]  # S with its interval, noise floor and corrected value; the kind's lines
    conditions: list[ConditionLine]
    invalid_total: str
    invalid_categories: list[tuple[str, int]]
    metrics: list[MetricRow]
    metrics_left: int
    figures: list[FigureImage]
    settings: str
    versions: str
    definition: str
    hash_matches: bool
    prompts: list[tuple[str, str]]  # condition -> the messages it sends, as text
    samples: SampleSet
    notes: list[str] = field(default_factory=list)
    serial: list[SerialRow] = field(default_factory=list)  # sequence runs: the serial tests


def _n(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _headline(r: RunResults) -> list[str]:
    lines = []
    if not math.isnan(r.s):
        lo, hi = r.s_ci
        text = f"S = {r.s:.3f}"
        if r.run.mode != "exact" and not math.isnan(lo):
            text += f"  95% CI [{lo:.3f}, {hi:.3f}]"
        if not math.isnan(r.s_noise_floor):
            text += f"  · noise floor at this N and grid {r.s_noise_floor:.3f}"
        if not math.isnan(r.s_corrected):
            text += f"  · noise-corrected S {r.s_corrected:.3f}"
        lines.append(text)
    if r.mostly_extrapolated:
        lines.append(
            f"S holds r flat over {r.s_extrapolated_share:.0%} of [0, 1]: compare it only with S"
            " on the same grid"
        )
    return [*lines, *r.lines]


def _conditions(r: RunResults) -> list[ConditionLine]:
    out = []
    for c in r.conditions:
        invalid = ", ".join(f"{k} {v}" for k, v in sorted(c.invalid.items()))
        rate = f"{_n(c.ci_low)}–{_n(c.ci_high)}*" if c.censored else _n(c.rate)
        share = "—" if math.isnan(c.invalid_share) else f"{c.invalid_share:.1%}"
        out.append(
            ConditionLine(
                c.condition, c.value, rate, _n(c.ci_low), _n(c.ci_high), c.n_valid, c.n_total,
                share, invalid or "0", _n(c.coverage, 4) if c.coverage is not None else "",
            )
        )  # fmt: skip
    return out


def _json(value: Any) -> str:
    return json.dumps(clean_json(value), indent=2, sort_keys=True, default=str)


def _prompts(r: RunResults) -> list[tuple[str, str]]:
    """What each condition sends (the rendered messages), for the definition section."""
    out = []
    for cond in r.experiment.conditions():
        text = "\n\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" for m in cond.messages)
        out.append((cond.key, text))
    return out


def run_section(
    journal: Journal, results: RunResults, index: int, per_condition: int
) -> RunSection:
    """Everything the report shows of one run."""
    r = results
    invalid: dict[str, int] = {}
    for c in r.conditions:
        for k, v in c.invalid.items():
            invalid[k] = invalid.get(k, 0) + v
    bad, total = sum(invalid.values()), r.n_requests
    rows, left = metric_rows(r.metrics)
    notes = []
    if r.run.message:
        notes.append(r.run.message)
    try:
        prompts = _prompts(r)
    except Exception as exc:  # a journal written by another version: the report still renders
        prompts = []
        notes.append(f"the prompts could not be rendered: {exc}")
    return RunSection(
        anchor=f"run-{index}", results=r, headline=_headline(r), conditions=_conditions(r),
        invalid_total=f"{bad / total:.1%} ({bad} of {total} replies)" if total else "no replies",
        invalid_categories=sorted(invalid.items(), key=lambda kv: -kv[1]),
        metrics=rows, metrics_left=left,
        figures=draw(lambda folder: figures_for(r, folder)),
        settings=_json(r.run.config), versions=_json(r.run.versions),
        definition=_json(r.experiment.model_dump(mode="json")),
        hash_matches=r.experiment.definition_hash() == r.run.definition_hash,
        prompts=prompts, samples=sample_rows(journal, r.run.run_id, per_condition), notes=notes,
        serial=serial_rows(r.metrics),
    )  # fmt: skip


@dataclass(frozen=True)
class Overlay:
    """Several runs of one experiment drawn together, with their table and differences."""

    experiment: str
    run_ids: list[str]
    figures: list[FigureImage]
    table: SideBySide
    differences: list[Difference]


def overlay_section(results: list[RunResults], *, force: bool) -> Overlay | None:
    """The overlay of runs of one experiment; None when they are not comparable (and not
    forced): each still has its own section, so nothing is hidden."""
    try:
        differences = check_comparable(results, force=force)
    except FlipbenchError:
        return None
    stem = f"overlay_{results[0].run.experiment}"
    return Overlay(
        results[0].run.experiment, [r.run.run_id for r in results],
        draw(lambda folder: overlay_figures(results, folder, stem)),
        side_by_side(results), differences,
    )  # fmt: skip
