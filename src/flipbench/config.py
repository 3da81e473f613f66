"""One configuration object for a run: the CLI flags, the Python API and what the journal stores."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flipbench.errors import FlipbenchError
from flipbench.safety import refresh_environment_secrets

DEFAULT_DB = "flipbench.db"
DEFAULT_MODEL = "local/smollm2"

Mode = Literal["sample", "exact"]

# Bounds of what a user may ask for (the CLI, the Python API and a resumed run's stored config
# alike): large enough for any real experiment, small enough that nothing overflows downstream.
MAX_N = 1_000_000  # valid samples per condition
MAX_D = 1000  # tokens per reply (d-flips)
MAX_TOKENS = 1_000_000  # max_tokens of one reply
MAX_TEMPERATURE = 100.0
MAX_SEED = 2**63 - 1  # what a signed 64-bit seed field (OpenAI's, llama.cpp's) holds
MAX_PROMPT_CHARS = 100_000
MAX_MODEL_OPTIONS_CHARS = 100_000  # the -M fields, as JSON

#: Request-body fields the experiment definition (or flipbench itself) sets: `-M` may not
#: replace them, or what is sent would differ from the recorded definition and its hash.
#: Value: how to set it instead.
OWNED_REQUEST_FIELDS = {
    "messages": "use --prompt / --system-prompt",
    "prompt": "use --prompt / --system-prompt",
    "model": "use --model",
    "temperature": "use --temperature",
    "max_tokens": "use --max-tokens",
    "max_completion_tokens": "use --max-tokens",
    "max_output_tokens": "use --max-tokens",
    "seed": "use --seed",
    "n": "each sample is its own request; use --n for the number of samples",
    "logprobs": "use --mode exact",
    "top_logprobs": "use --mode exact",
    "n_probs": "use --mode exact",
    "stream": "flipbench sets it itself",
    "stream_options": "flipbench sets it itself",
    "response_format": "use --constrained",
    "structured_outputs": "use --constrained",
    "json_schema": "use --constrained",
    "grammar": "use --constrained",
    "guided_json": "use --constrained",
    "guided_regex": "use --constrained",
    "guided_choice": "use --constrained",
    "guided_grammar": "use --constrained",
}


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
    refresh_environment_secrets()
    return loaded


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or `taskset`'s
    limit, not the machine's count), the default of `--threads`."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks here (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def default_db_path() -> Path:
    """`FLIPBENCH_DB` if set, else `./flipbench.db`."""
    return Path(os.environ.get("FLIPBENCH_DB") or DEFAULT_DB)


class RunConfig(BaseModel):
    """Everything a user chooses for a run; unset experiment values fall back to its definition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment: str = "single-flip"
    model: str = DEFAULT_MODEL
    mode: Mode = "sample"
    n: int | None = Field(default=None, ge=1, le=MAX_N, description="valid samples per condition")
    grid: str | None = Field(default=None, description="named grid of the experiment")
    p_values: list[str] | None = Field(
        default=None, max_length=10_000, description="explicit p values, in percent"
    )
    d: int | None = Field(default=None, ge=1, le=MAX_D, description="tokens per reply (d-flips)")
    temperature: float | None = Field(default=None, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    prompt: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="prompt template with the experiment's fields ({p} and {q} for coins)",
    )
    system_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    constrained: bool = Field(
        default=False, description="enforce the answer space with a grammar/structured output"
    )
    intervention: str = Field(
        default="direct",
        max_length=64,
        description="how the model is asked to randomise (`flipbench interventions` lists them;"
        " recorded with the run and hashed into its definition)",
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="requests in flight at once (default: the backend's, 4 local, 64 API)",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads of a local model's llama.cpp (default: the cores this process"
        " may use; recorded with the run); API models refuse it",
    )
    max_attempts_factor: float = Field(
        default=5.0,
        ge=1.0,
        le=1000.0,
        allow_inf_nan=False,
        description="stop a condition after this many × N attempts, even if short of N valid",
    )
    max_cost: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="stop cleanly once API calls cost this (USD)",
    )
    timeout_s: float = Field(
        default=60.0, gt=0, le=3600, allow_inf_nan=False, description="per-request timeout"
    )
    max_retries: int = Field(default=8, ge=0, le=100, description="retries of one request")
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="extra request-body fields (-M key=value)"
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict,
        description="the backend's own arguments (-B key=value; hf/…: dtype, device,"
        " batch_size), never sent as request fields; each backend checks its own",
    )
    answer_from_reasoning: bool = Field(
        default=False,
        description="when the visible reply is empty, take the last answer in the reasoning text",
    )
    fallback_to_sample: bool = Field(
        default=False, description="if exact mode is unavailable on the endpoint, sample instead"
    )
    first_token: bool = Field(
        default=False,
        description="with --mode exact: read the answer's first token only (on local/… instead"
        " of whole answers; for games, a reply given with no reasoning: not the game as"
        " designed, never used by the benchmark)",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="base seed; each sample gets its own derived seed when set",
    )
    run_id: str | None = None
    bench_id: str | None = Field(default=None, description="the benchmark this run belongs to")

    @field_validator("backend_options")
    @classmethod
    def _plain_backend_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Backend arguments are few and plain JSON (they are stored with the run)."""
        try:
            size = len(json.dumps(options, allow_nan=False))
        except (TypeError, ValueError, RecursionError):
            raise ValueError("-B values must be plain JSON") from None
        if size > MAX_MODEL_OPTIONS_CHARS:
            raise ValueError(f"-B options are too large ({size:,} characters of JSON)")
        return options

    @field_validator("model_options")
    @classmethod
    def _no_owned_fields(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Extra request fields may add to a request, never replace what the definition sends
        (its prompt, temperature, max_tokens…), and must be plain JSON."""
        for key in options:
            name = str(key).strip().lower().replace("-", "_")
            if not name:
                raise ValueError("-M needs a field name (NAME=VALUE)")
            if name in OWNED_REQUEST_FIELDS:
                instead = OWNED_REQUEST_FIELDS[name]
                raise ValueError(f"-M {name}=… would bypass the recorded definition; {instead}")
        try:
            size = len(json.dumps(options, allow_nan=False))
        except (TypeError, ValueError, RecursionError):
            raise ValueError(
                "-M values must be plain JSON (no NaN or Infinity, not nested too deep)"
            ) from None
        if size > MAX_MODEL_OPTIONS_CHARS:
            raise ValueError(f"-M fields are too large ({size:,} characters of JSON)")
        return options
