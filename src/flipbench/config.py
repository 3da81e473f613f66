"""One configuration object for a run: the CLI flags, the Python API and what the journal stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flipbench.errors import FlipbenchError

DEFAULT_DB = "flipbench.db"
DEFAULT_MODEL = "local/smollm2"

Mode = Literal["sample", "exact"]


def load_env_file(path: Path) -> list[str]:
    """Set API keys and URLs from a `.env` file the user points to; returns the names set.

    Variables already in the environment win (as with python-dotenv's default), and values are
    never echoed: a key must not reach a log or an error message.
    """
    from dotenv import dotenv_values

    if not path.is_file():
        raise FlipbenchError(f"env file {path} does not exist")
    try:
        values = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise FlipbenchError(f"cannot read env file {path}: {type(exc).__name__}") from None
    loaded = []
    for name, value in values.items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            loaded.append(name)
    return loaded


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
    d: int | None = Field(default=None, description="tokens per reply (d-flips)")
    temperature: float | None = None
    max_tokens: int | None = None
    prompt: str | None = Field(default=None, description="prompt template with {p} and {q}")
    system_prompt: str | None = None
    constrained: bool = Field(
        default=False, description="enforce the answer space with a grammar/structured output"
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="requests in flight at once (default: the backend's, 4 local, 64 API)",
    )
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
    answer_from_reasoning: bool = Field(
        default=False,
        description="when the visible reply is empty, take the last answer in the reasoning text",
    )
    fallback_to_sample: bool = Field(
        default=False, description="if exact mode is unavailable on the endpoint, sample instead"
    )
    seed: int | None = Field(
        default=None, description="base seed; each sample gets its own derived seed when set"
    )
    run_id: str | None = None
    bench_id: str | None = Field(default=None, description="the benchmark this run belongs to")
