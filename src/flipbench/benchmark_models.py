"""The benchmark summary as typed models: what `flipbench bench` writes and the leaderboard reads.

`docs/benchmark-summary.schema.json` is generated from these models; after changing one, write
it again with

    python -m flipbench.benchmark_models --write-schema docs/benchmark-summary.schema.json

(tests/test_benchmark.py fails while the committed file differs). Only pydantic is imported
here, so every layer of flipbench may read a summary.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeInt,
    WithJsonSchema,
)
from pydantic.json_schema import GenerateJsonSchema

__all__ = [
    "SCHEMA_COMMAND",
    "SCHEMA_VERSION",
    "BenchmarkSummary",
    "BootstrapSettings",
    "ConditionCounts",
    "Exp1Metrics",
    "Exp1Part",
    "Exp2Metrics",
    "Exp2Part",
    "Exp3Metrics",
    "Exp3Part",
    "Exp4Metrics",
    "Exp4Part",
    "Exp5Metrics",
    "Exp5Part",
    "GameMetrics",
    "Number",
    "PartMetrics",
    "PartName",
    "PartSummary",
    "PartsSummary",
    "RunSettings",
    "RunSummary",
    "ScoreEstimate",
    "SummaryReadings",
    "WordPairMetrics",
    "schema_text",
    "summary_json_schema",
]

SCHEMA_VERSION: Literal["1"] = "1"
SCHEMA_ID = "https://flipbench.dev/schemas/benchmark-summary/1"
SCHEMA_COMMAND = (
    "python -m flipbench.benchmark_models --write-schema docs/benchmark-summary.schema.json"
)
PartName: TypeAlias = Literal["exp1", "exp2", "exp3", "exp4", "exp5"]


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


#: A measured number: None (JSON null) where it is undefined. NaN and ±inf are read as None.
Number: TypeAlias = Annotated[float | None, AfterValidator(_finite_or_none)]
#: A (low, high) percentile bootstrap interval; (None, None) where it is undefined.
Interval: TypeAlias = tuple[Number, Number]


def _is_20(value: float) -> float:
    if value != 20.0:
        raise ValueError("must be 20.0")
    return value


def _is_100(value: float) -> float:
    if value != 100.0:
        raise ValueError("must be 100.0")
    return value


# Constant floats (typing has no float literals).
MaxScore: TypeAlias = Annotated[float, AfterValidator(_is_20), WithJsonSchema({"const": 20.0})]
MaxTotal: TypeAlias = Annotated[float, AfterValidator(_is_100), WithJsonSchema({"const": 100.0})]


class _Model(BaseModel):
    """Frozen, closed (unknown keys are errors), field docstrings become schema descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ScoreEstimate(_Model):
    """A score with its interval, its noise floor and its noise-corrected value; None (null)
    where undefined (the last two are absent from summaries written before they existed)."""

    score: Number
    """points: 0 … max_score (Table S1's scoring, unchanged)"""
    ci: Interval
    """the score's interval [low, high] (bootstrap.method: bias-aware, coverage measured)"""
    noise_floor: Number = None
    """the score a perfectly calibrated model is expected to get at these grids and n (sampling
    noise alone keeps it below max_score; max_score for exact runs but Exp4's grid corners)"""
    corrected: Number = None
    """the score minus its bootstrap bias, clipped to [0, max_score]"""

    @property
    def ci_low(self) -> float | None:
        return self.ci[0]

    @property
    def ci_high(self) -> float | None:
        return self.ci[1]


class PartMetrics(_Model):
    """The sub-metrics of one part (docs/benchmark.md); None where undefined."""


class Exp1Metrics(PartMetrics):
    """Exp1 (single flip): step-likeness of P("1") against p."""

    S: Number


class Exp2Metrics(PartMetrics):
    """Exp2 (two flips in one reply): S of the first flip, of the second and of their mean."""

    S1: Number
    S2: Number
    S_avg: Number


class Exp3Metrics(PartMetrics):
    """Exp3 (ternary draw): deviation areas A0–A2 and their normalised S0–S2."""

    A0: Number
    A1: Number
    A2: Number
    S0: Number
    S1: Number
    S2: Number


class GameMetrics(_Model):
    """One Exp4 game: its points, S (reported even where not scored) and the direction score."""

    score: Number
    S: Number
    direction_raw: Number
    d: Number
    slope: Number = None
    """least-squares slope of r on x (not scored)"""
    d_trend: Number = None
    """(1 + sign(slope)) / 2: the direction read from the trend, which noise on closely spaced
    conditions cannot scramble (not scored)"""


class Exp4Metrics(PartMetrics):
    """Exp4 (decisions): the three games."""

    bioinformatics: GameMetrics
    matching_pennies: GameMetrics
    business: GameMetrics


class WordPairMetrics(_Model):
    """One Exp5 word pair: the red word's rate in each order, their mean and its bias."""

    r_red_forward: Number
    r_red_reverse: Number
    avg_bias: Number
    red_bias: Number


class Exp5Metrics(PartMetrics):
    """Exp5 (word and position bias): position and semantic bias, with every pair."""

    avg_pos_bias: Number
    avg_red_bias: Number
    Score_pos: Number
    Score_sem: Number
    pairs: dict[str, WordPairMetrics]


class PartSummary(ScoreEstimate):
    """One part of the benchmark: its score out of max_score with its interval."""

    max_score: MaxScore
    metrics: PartMetrics
    """every sub-metric of docs/benchmark.md for this part"""
    notes: list[str]
    """conditions dropped or undefined, and why"""


class Exp1Part(PartSummary):
    """Exp1, single flip."""

    metrics: Exp1Metrics


class Exp2Part(PartSummary):
    """Exp2, two flips in one reply."""

    metrics: Exp2Metrics


class Exp3Part(PartSummary):
    """Exp3, ternary draw."""

    metrics: Exp3Metrics


class Exp4Part(PartSummary):
    """Exp4, decisions (games)."""

    metrics: Exp4Metrics


class Exp5Part(PartSummary):
    """Exp5, word and position bias."""

    metrics: Exp5Metrics


class PartsSummary(_Model):
    """The five parts of 20 points each."""

    exp1: Exp1Part
    exp2: Exp2Part
    exp3: Exp3Part
    exp4: Exp4Part
    exp5: Exp5Part

    def by_name(self) -> dict[PartName, PartSummary]:
        """The parts in order, by name."""
        return {
            "exp1": self.exp1,
            "exp2": self.exp2,
            "exp3": self.exp3,
            "exp4": self.exp4,
            "exp5": self.exp5,
        }


class SummaryReadings(_Model):
    """The readings of docs/benchmark.md (where the scoring table leaves a choice) used."""

    exp3_norm_diagonal: FiniteFloat
    exp3_norm_flat: FiniteFloat
    direction_dead_band: FiniteFloat
    sem_divisor: FiniteFloat
    direction: str
    """the direction rule in words, e.g. "strict-sign (raw+1)/2\""""
    direction_trend: str | None = None
    """the unscored trend variant of the direction score, in words"""


class BootstrapSettings(_Model):
    """How the intervals were drawn."""

    n_boot: int = Field(ge=1)
    confidence: FiniteFloat = Field(gt=0.0, lt=1.0)
    seed: int
    method: Literal["percentile", "bias-aware"]
    """bias-aware: the basic bootstrap widened by the bias noise gives a score near calibration
    (docs/benchmark.md, "Intervals"); percentile: summaries written before it"""
    noise_floor_draws: int | None = Field(default=None, ge=1)
    """simulated draws of a calibrated model behind every noise_floor (seed 0)"""


class ConditionCounts(_Model):
    """One condition of a run: its grid point and how many answers were valid."""

    key: str
    x: FiniteFloat = Field(ge=0.0, le=1.0)
    n_valid: NonNegativeInt
    n_total: NonNegativeInt
    invalid_share: Number
    """share of replies that were not valid; null with no replies"""
    invalid: dict[str, int]
    """invalid replies by category"""


class RunSettings(_Model):
    """What a run sent: the experiment's settings and the request options."""

    temperature: FiniteFloat
    max_tokens: int
    n: int
    d: int
    prompt_version: str
    definition_hash: str
    model_options: dict[str, Any]
    """extra request fields (reasoning, provider pinning)"""
    answer_from_reasoning: bool


class RunSummary(_Model):
    """One of the (up to seven) runs the summary was made from."""

    part: PartName
    run_id: str
    experiment: str
    status: str
    mode: Literal["sample", "exact"]
    constrained: bool
    settings: RunSettings
    conditions: list[ConditionCounts]
    cost_usd: Number
    """what the replies reported they cost; null when none reported it"""


class BenchmarkSummary(_Model):
    """What `flipbench bench` writes: the 100-point benchmark of one model, recomputed from the
    journal.

    NaN policy: a number that is undefined (no valid answers, too few usable conditions, a
    part not run) is None here and null in the JSON; NaN and ±inf given to any measured field
    are read as None, and fields that are always defined reject them, so no summary ever
    holds a non-finite float.
    """

    model_config = ConfigDict(title="flipbench benchmark summary (schema_version 1)")

    schema_version: Literal["1"]
    bench_id: str
    model: str
    created_at: str
    """when the earliest run was created"""
    flipbench_version: str
    model_versions: dict[str, Any]
    """model identity: GGUF sha256, remote model, base URL"""
    complete: bool
    """all seven runs present and complete"""
    total: ScoreEstimate
    max_total: MaxTotal
    parts: PartsSummary
    readings: SummaryReadings
    bootstrap: BootstrapSettings
    runs: list[RunSummary] = Field(max_length=7)

    def to_json(self) -> str:
        """The summary file's text: 2-space indented strict JSON, with a final newline."""
        return json.dumps(self.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"


class _NoFieldTitles(GenerateJsonSchema):
    """Leaves out the per-field titles pydantic derives from field names (noise)."""

    def field_title_should_be_set(self, schema: object) -> bool:
        return False


def summary_json_schema() -> dict[str, Any]:
    """The JSON schema of a summary, generated from `BenchmarkSummary`."""
    schema = BenchmarkSummary.model_json_schema(schema_generator=_NoFieldTitles)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """docs/benchmark-summary.schema.json exactly: sorted keys, 2-space indent, final newline."""
    return json.dumps(summary_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flipbench.benchmark_models",
        description="Print (or write) the JSON schema of the benchmark summary.",
    )
    parser.add_argument("--write-schema", type=Path, metavar="PATH", help="write it to PATH")
    args = parser.parse_args(argv)
    if args.write_schema is None:
        print(schema_text(), end="")
    else:
        args.write_schema.write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
