"""One configuration object for a run: the CLI flags, the Python API and what the journal stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DB = "flipbench.db"
DEFAULT_MODEL = "local/smollm2"

Mode = Literal["sample", "exact"]


def default_db_path() -> Path:
    """`FLIPBENCH_DB` if set, else `./flipbench.db`."""
    return Path(os.environ.get("FLIPBENCH_DB") or DEFAULT_DB)


class RunConfig(BaseModel):
    """Everything a user chooses for a run; unset experiment values fall back to its definition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: str = "single-flip"
    model: str = DEFAULT_MODEL
    mode: Mode = "sample"
    n: int | None = Field(default=None, description="valid samples per condition")
    grid: str | None = Field(default=None, description="named grid of the experiment")
    p_values: list[str] | None = Field(default=None, description="explicit p values, in percent")
    temperature: float | None = None
    max_tokens: int | None = None
    prompt: str | None = Field(default=None, description="prompt template with {p} and {q}")
    system_prompt: str | None = None
    constrained: bool = Field(
        default=False, description="enforce the answer space with a grammar/structured output"
    )
    max_concurrency: int = Field(default=4, ge=1, description="requests in flight at once")
    max_attempts_factor: float = Field(
        default=5.0,
        ge=1.0,
        le=1000.0,
        description="stop a condition after this many × N attempts, even if short of N valid",
    )
    max_cost: float | None = Field(
        default=None, gt=0, le=1e6, description="stop cleanly once API calls cost this (USD)"
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="per-request timeout")
    max_retries: int = Field(default=8, ge=0, le=100, description="retries of one request")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="extra request-body fields (-M key=value)"
    )
    seed: int | None = Field(
        default=None, description="base seed; each sample gets its own derived seed when set"
    )
    run_id: str | None = None
