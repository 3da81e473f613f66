"""The one interface every backend implements, and the reply it hands back to the runner.

A trial reaches a backend as chat messages (`sample`, `distribution`; an assistant prefill is a
final assistant message the model continues) or as raw text (`sample_raw`, `distribution_raw`,
for base models, where the backend has a completions endpoint: `supports_raw`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from flipbench.errors import FlipbenchError
from flipbench.providers.censoring import Censoring

if TYPE_CHECKING:
    from flipbench.config import RunConfig

Message = Mapping[str, str]


@dataclass(frozen=True)
class SampleSettings:
    """How one sample is drawn; every value is sent explicitly and recorded."""

    temperature: float
    max_tokens: int
    constrain_to: tuple[str, ...] | None = None
    constrain_count: int = 1  # constrained replies hold this many answers, space-separated
    # The reply continues a text (an assistant prefill, a raw prompt): a constrained reply may
    # start with a space, as the answer's token after a word usually does.
    continuation: bool = False
    seed: int | None = None
    # An intervention's extra request-body fields (structured output, a tool, reasoning
    # effort); only backends that list the feature in `request_features` are given any.
    request_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    """A completed request: raw wire data plus the fields the runner reads."""

    request: dict[str, Any]
    response: Any
    ok: bool
    http_status: int | None = None
    content: str | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    error: str | None = None
    cost: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Exact mode: log-probabilities of the next-token candidates whose text is an answer.
    answer_logprobs: dict[str, list[float]] | None = None
    # Set by a backend when a reply that arrived is still not a sample (e.g. a cache hit).
    invalid_category: str | None = None
    # Exact mode from a truncated top-k list: what it left unknown (the rates are then bounds).
    censoring: Censoring | None = None


@dataclass(frozen=True)
class ExactDistribution:
    """Next-token probabilities over an answer set, before and after renormalising."""

    raw: dict[str, float]
    coverage: float
    renormalised: dict[str, float]


def exact_distribution(
    answer_logprobs: Mapping[str, Sequence[float]], temperature: float
) -> ExactDistribution:
    """The sampler's answer distribution, read from raw next-token log-probabilities.

    Sampling at temperature T draws token i with probability ∝ p_i^(1/T); restricted to the
    answer tokens (what a sampler whose reply is a valid one-token answer does) that is the
    renormalised distribution returned here. T = 0 is the argmax (ties split evenly).
    """
    raw = {a: float(sum(math.exp(lp) for lp in lps)) for a, lps in answer_logprobs.items()}
    coverage = float(sum(raw.values()))
    candidates = [(a, lp) for a, lps in answer_logprobs.items() for lp in lps]
    if not candidates:
        return ExactDistribution(raw, 0.0, {a: math.nan for a in answer_logprobs})
    if temperature == 0:
        best = max(lp for _, lp in candidates)
        winners = {a for a, lp in candidates if lp == best}
        share = 1.0 / len(winners)
        renorm = {a: share if a in winners else 0.0 for a in answer_logprobs}
        return ExactDistribution(raw, coverage, renorm)
    scaled = [(a, lp / temperature) for a, lp in candidates]
    top = max(s for _, s in scaled)
    weights: dict[str, float] = dict.fromkeys(answer_logprobs, 0.0)
    for a, s in scaled:
        weights[a] += math.exp(s - top)
    total = sum(weights.values())
    return ExactDistribution(raw, coverage, {a: w / total for a, w in weights.items()})


_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A rough token count of a chat prompt (≈ 4 characters per token, a few per message for
    the chat template): the catalogue gives prices, not a tokenizer."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return -(-chars // _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)


def estimate_request_tokens(request: Mapping[str, Any]) -> int:
    """`estimate_prompt_tokens` of a request body: its chat messages, or its raw `prompt`."""
    prompt = request.get("prompt")
    if isinstance(prompt, str):
        return -(-len(prompt) // _CHARS_PER_TOKEN)
    return estimate_prompt_tokens(request.get("messages") or [])


@dataclass(frozen=True)
class Pricing:
    """Catalogue prices, USD per token."""

    prompt: float
    completion: float


class Backend(ABC):
    """A model behind one interface: sampled replies and, where possible, exact distributions."""

    prefix: ClassVar[str]
    supports_exact: ClassVar[bool] = False
    supports_constrained: ClassVar[bool] = False
    # Raw prompts (base models): a completions endpoint takes plain text (`sample_raw`).
    supports_raw: ClassVar[bool] = False
    # A backend-specific default for max_tokens when the user sets none (API reasoning models).
    default_max_tokens: ClassVar[int | None] = None
    # Requests in flight when the user sets no --max-concurrency: a local model shares two
    # cores, an API absorbs many (the adaptive limiter still cuts it on rate limits).
    default_concurrency: ClassVar[int] = 4
    # Runner tasks per allowed in-flight request. An API backend keeps a task through retries,
    # backoff sleeps and hung requests, all outside its concurrency limiter's count or waiting
    # on it; with one task per slot those would starve the limiter of work.
    tasks_per_slot: ClassVar[int] = 1
    # Print calls and estimated cost before running (API backends, where calls cost money).
    prints_plan: ClassVar[bool] = False
    # The model runs on this machine's CPU, so `--threads` applies (API backends refuse it) and
    # the plan estimates the run's time from the embedded model's measured rates (`plan`).
    uses_cpu_threads: ClassVar[bool] = False
    # Exact mode's seconds per condition in that estimate, measured on the embedded model by
    # the backend that reads it; None: the llama.cpp rate of `plan.LOCAL_RATES`.
    exact_s_per_condition: ClassVar[float | None] = None
    # Request-body features an intervention may need (`response_format`, `tools`,
    # `reasoning`): a backend lists those it sends as given, others refuse such interventions.
    request_features: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: str) -> None:
        self.model = model
        # Called by a paid backend right before each request leaves, so the runner can mark it
        # in flight in the journal (a crash after that point loses a paid reply).
        self.on_send: Callable[[], None] | None = None

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        """Build the backend with the run's options (API backends read budget, timeouts…)."""
        return cls(config.model)

    async def preflight(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Refuse before any paid request what is known to fail (an unknown model name)."""

    async def pricing(self) -> Pricing | None:
        """USD per prompt/completion token from the provider's catalogue (None: free/unknown)."""
        return None

    async def exact_unavailable(self) -> str | None:
        """Why exact mode cannot run on this model (None: it can, as far as can be told)."""
        return None

    def set_spent(self, usd: float) -> None:  # noqa: B027 - free backends have no budget
        """The run's spend so far, from its journal; paid backends count their budget from it."""

    def retry_counts(self) -> dict[str, int]:
        """Retries made so far, by failure class (empty for backends that never retry)."""
        return {}

    @classmethod
    @abstractmethod
    def validate(cls, model: str) -> None:
        """Refuse a bad model name cheaply, before anything is written or started."""

    @classmethod
    def check_backend_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse, before anything starts, backend arguments (`-B`) this backend does not
        take: by default any (a flag that silently did nothing would mislead)."""
        if options:
            raise FlipbenchError(f"{cls.prefix}/… models take no backend options (-B)")

    @classmethod
    def check_protocol(cls, protocol: str) -> None:
        """Refuse, before any call, a trial protocol (`tasks.protocols`) this backend cannot
        send: raw text needs a completions endpoint."""
        if protocol == "raw" and not cls.supports_raw:
            raise FlipbenchError(
                f"{cls.prefix}/… models take chat messages only: a raw prompt needs a"
                " completions endpoint (local/… or openai-api/…)"
            )

    def size_for(self, prompt_tokens: int, reply_tokens: int) -> None:
        """What the run's longest request needs (estimated prompt tokens, decoded tokens),
        told before `start`: a backend that allocates memory per request slot sizes it (the
        local llama.cpp server samples ~3x faster in small slots); others ignore it."""
        return None

    @abstractmethod
    async def start(self, *, concurrency: int, exact: bool) -> None:
        """Acquire what the backend needs (server, HTTP session)."""

    @abstractmethod
    async def close(self) -> None:
        """Release everything `start` acquired."""

    @abstractmethod
    def versions(self) -> dict[str, Any]:
        """Model and runtime identity, recorded with the run."""

    @abstractmethod
    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        """One sampled reply."""

    def completions_per_request(self, settings: SampleSettings) -> int:
        """How many independent completions one request may carry (`sample_many`); 1 where
        the endpoint or its billing makes one reply per request the safe shape."""
        return 1

    async def sample_many(
        self, messages: Sequence[Message], settings: SampleSettings, count: int
    ) -> list[Reply]:
        """`count` sampled replies to the same messages (one each, unless the backend can ask
        for several completions in one request)."""
        return [await self.sample(messages, settings) for _ in range(count)]

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        """The next-token log-probabilities of every answer (exact mode)."""
        raise NotImplementedError(f"{self.prefix} backends have no exact mode")

    async def sample_raw(self, prompt: str, settings: SampleSettings) -> Reply:
        """One sampled continuation of a plain-text prompt (no chat template)."""
        self.check_protocol("raw")
        raise NotImplementedError(f"{self.prefix} backends have no raw prompts")

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        """The next-token log-probabilities of every answer after a plain-text prompt."""
        self.check_protocol("raw")
        raise NotImplementedError(f"{self.prefix} backends have no raw prompts")
