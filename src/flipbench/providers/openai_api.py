"""`openrouter/<author>/<slug>` and `openai-api/<name>/<model>`: models behind an HTTP API.

Every call goes through one loop: an adaptive concurrency slot, the request, a classification
of the outcome (see `failures`), then success, a retry (rate limits honour Retry-After and
shrink concurrency; transient errors back off with jitter), or a fatal stop of the whole model
with one message — never N wasted calls. Keys come from the environment only and are sent in a
header, so they never reach a journaled request body.

Trial protocols: a raw prompt goes to `<base>/completions` (`prompt`; `openai-api/…` only:
OpenRouter's text completions do not promise an untemplated prompt). An assistant prefill is
sent as the last message, role assistant: OpenRouter documents that as a prefill the model
continues; other OpenAI-compatible servers vary (docs/experiments.md).
"""

from __future__ import annotations

import asyncio
import difflib
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from flipbench.errors import BackendFatalError, BudgetReached, FlipbenchError
from flipbench.providers.base import (
    Backend,
    Message,
    Pricing,
    Reply,
    SampleSettings,
    estimate_request_tokens,
)
from flipbench.providers.failures import FailureKind, retires_the_key
from flipbench.providers.keys import ApiKey, KeyRing, read_keys
from flipbench.providers.limits import AdaptiveLimiter, Backoff, Budget
from flipbench.providers.openai_compat import (
    CHAT,
    COMPLETIONS,
    ChatClient,
    Exchange,
    read_exact,
    reported_cost,
    to_reply,
)
from flipbench.providers.reach import check_reachable
from flipbench.providers.replies import flag_cache_hit
from flipbench.safety import clean_url, register_secret

if TYPE_CHECKING:
    from flipbench.config import RunConfig

OPENROUTER_URL = "https://openrouter.ai/api/v1"
# A reasoning model spends max_tokens on thinking before the visible answer; 1,024 leaves it
# room while a non-reasoning model still stops after its one-token answer (you pay per token).
API_MAX_TOKENS = 1024
API_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class ApiOptions:
    """Per-run options of an API backend (from RunConfig)."""

    max_concurrency: int = 64
    max_cost_usd: float | None = None
    timeout_s: float = 60.0
    max_retries: int = 8
    extra_body: dict[str, Any] = field(default_factory=dict)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


class OpenAICompatibleBackend(Backend):
    """Any OpenAI-compatible server: `<NAME>_BASE_URL` and (optional) `<NAME>_API_KEY`."""

    prefix: ClassVar[str] = "openai-api"
    supports_exact: ClassVar[bool] = True
    supports_raw: ClassVar[bool] = True
    default_max_tokens: ClassVar[int | None] = API_MAX_TOKENS
    default_concurrency: ClassVar[int] = 64
    tasks_per_slot: ClassVar[int] = 4
    prints_plan: ClassVar[bool] = True
    extra_headers: ClassVar[dict[str, str]] = {}
    request_features: ClassVar[frozenset[str]] = frozenset(
        {"response_format", "tools", "reasoning"}
    )

    def __init__(self, model: str, options: ApiOptions | None = None) -> None:
        super().__init__(model)
        self.options = options or ApiOptions()
        self.base_url, self._key, self.remote_model = self._endpoint(model)
        # The key and any password in the URL are masked wherever text is printed or stored,
        # whatever their shape (a server may echo them back in an error body or a header).
        register_secret(self._key)
        # Several keys (`<NAME>_API_KEY`, `_0` … `_9`): requests are spread over them and a
        # key out of credit is retired (`keys`); a sweep swaps in its one shared ring.
        self.keys = KeyRing.from_env(self.key_variable, service=self.service)
        for key in self.keys.keys:
            register_secret(key.value)
        self.run_id: str | None = None  # for the resume hint when every key is spent
        register_secret(urlsplit(self.base_url).password)
        register_secret(unquote(urlsplit(self.base_url).password or ""))
        # A 429 halves concurrency at most once per Retry-After (≥ 1 s), and the rate-limited
        # request itself waits at least Retry-After before its retry; other requests go on after
        # a short pause. A global pause of Retry-After on every 429 made a run with 10 % random
        # 429s six times slower, and a cut per 429 pinned the limit at 2–4.
        # It starts at 4 in flight (slow start doubles that every round trip), so a bad key or
        # an unknown model costs at most 4 calls before the first reply stops everything.
        self.limiter = AdaptiveLimiter(
            self.options.max_concurrency,
            initial=4,
            default_cooldown_s=0.05,
            cut_window_s=1.0,
            pause_for_retry_after=False,
        )
        self.backoff = Backoff()
        self.budget = Budget(self.options.max_cost_usd)
        self._sending = 0  # requests on the wire
        self._settled = asyncio.Event()  # set (and replaced) each time one comes back
        self.retries: Counter[str] = Counter()
        self._client: ChatClient | None = None
        self._fatal: str | None = None
        self._catalogue: dict[str, Any] | None = None
        self._catalogue_read = False
        self._catalogue_ids: list[str] = []

    @classmethod
    def _endpoint(cls, model: str) -> tuple[str, str | None, str]:
        parts = model.split("/", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise FlipbenchError(f"model {model!r} must look like openai-api/<name>/<model>")
        name, remote = parts[1], parts[2]
        env = name.upper().replace("-", "_")
        base = _env(f"{env}_BASE_URL") or (
            "https://api.openai.com/v1" if name == "openai" else None
        )
        if base is None:
            raise FlipbenchError(
                f"set {env}_BASE_URL to the server's /v1 URL for {model} (in the environment,"
                " or in a .env file passed with --env-file)"
            )
        return base, _env(f"{env}_API_KEY"), remote

    @property
    def url_variable(self) -> str:
        """The variable that sets this backend's endpoint, for error lines."""
        return f"{self.model.split('/')[1].upper().replace('-', '_')}_BASE_URL"

    @property
    def key_variable(self) -> str:
        """The variable of this backend's key (`_0` … `_9` after it hold more keys)."""
        return f"{self.model.split('/')[1].upper().replace('-', '_')}_API_KEY"

    async def preflight(self) -> None:
        """A dead endpoint is one line naming the URL, in seconds, before a run is created."""
        hint = f" (check {self.url_variable}, or start the server)"
        await check_reachable(self.base_url, self.service, hint=hint)

    @classmethod
    def validate(cls, model: str) -> None:
        cls._endpoint(model)

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        options = ApiOptions(
            max_concurrency=config.max_concurrency or cls.default_concurrency,
            max_cost_usd=config.max_cost,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            extra_body=dict(config.model_options),
        )
        backend = cls(config.model, options)
        backend.run_id = config.run_id
        return backend

    def retry_counts(self) -> dict[str, int]:
        return dict(self.retries)

    @property
    def service(self) -> str:
        """How error lines name the other side."""
        return f"the {self.model.split('/')[1]} server"

    async def start(self, *, concurrency: int, exact: bool) -> None:
        self._client = ChatClient(
            self.base_url, api_key=self._key, headers=dict(self.extra_headers),
            timeout_s=self.options.timeout_s, max_connections=max(concurrency, 8) + 8,
            service=self.service,
        )  # fmt: skip
        await self._client.start()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def versions(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "remote_model": self.remote_model,
            "base_url": clean_url(self.base_url),
        }

    async def catalogue_entry(self) -> dict[str, Any] | None:
        """This model's entry of `GET /models` (prices, supported parameters), read once."""
        assert self._client is not None, "backend not started"
        if not self._catalogue_read:
            self._catalogue_read = True
            key = self.keys.pick()
            data = await self._client.get_json("models", api_key=key.value if key else None)
            models = data.get("data") if isinstance(data, dict) else None
            for entry in models if isinstance(models, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    self._catalogue_ids.append(entry["id"])
                    if entry["id"] == self.remote_model:
                        self._catalogue = entry
        return self._catalogue

    async def pricing(self) -> Pricing | None:
        prices = (await self.catalogue_entry() or {}).get("pricing") or {}
        try:
            return Pricing(float(prices["prompt"]), float(prices["completion"]))
        except (KeyError, TypeError, ValueError):
            return None

    async def exact_unavailable(self) -> str | None:
        params = (await self.catalogue_entry() or {}).get("supported_parameters")
        if isinstance(params, list) and "top_logprobs" not in params:
            return f"{self.remote_model} does not list top_logprobs among its supported parameters"
        return None

    def _body(self, prompt: dict[str, Any], temperature: float, max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.remote_model,
            **prompt,  # {"messages": […]} or, raw, {"prompt": "…"}
            "temperature": temperature,
            "max_tokens": max_tokens,
            **self.options.extra_body,
        }

    async def call(self, body: dict[str, Any], endpoint: str = CHAT) -> Reply:
        """Send with retries; returns the final reply (ok or not) or raises on a fatal failure.

        Failed attempts before the final reply are summarised in its `meta["attempts"]`, and any
        cost they reported is added to its cost, so whatever was paid is journaled with it.
        Once the budget is reached no new request starts; a call that already failed at least
        once returns its last failure (journaled) instead of raising, so nothing is lost.
        Each attempt goes on the next live key; a key out of credit is retired and the attempt
        repeated on another (not counted as a retry); the label of the key that served the
        reply is `meta["key"]`. With every key retired, `KeysExhausted` once none is in flight.
        """
        assert self._client is not None, "backend not started"
        counts: Counter[str] = Counter()
        attempts: list[dict[str, Any]] = []
        paid = 0.0
        attempt = 0
        last: Reply | None = None
        while True:
            if self._fatal is not None:
                raise BackendFatalError(self._fatal)
            settled = self._settled
            key: ApiKey | None = None
            async with self.limiter.slot():
                # Both checked once the slot is ours: a call may wait long for it, and what was
                # decided meanwhile (a fatal reply, the budget spent) must stop it from leaving.
                if self._fatal is not None:
                    raise BackendFatalError(self._fatal)
                if self.budget.reached:
                    if last is not None:
                        last.meta["stopped_by_budget"] = True
                        return last
                    raise BudgetReached(self.budget.spent, self.options.max_cost_usd or 0.0)
                key = self.keys.pick()
                wait = self._must_wait_for_budget() or self.keys.exhausted
                exchange = None if wait else await self._send(body, endpoint, key)
            if exchange is None and self.keys.exhausted:
                if last is not None:  # paid attempts are journaled, as at the budget
                    last.meta["stopped_by_keys"] = True
                    return last
                await self._stop_for_keys()
            if exchange is None:  # the calls in flight may spend what is left: see first
                await settled.wait()
                continue
            failure = exchange.failure()
            if failure is None:
                self.limiter.on_success()
                reply = to_reply(exchange, None)
                if key is not None:
                    reply.meta["key"] = key.label
                paid += self._account(reply)
                flag_cache_hit(reply)
                if counts:
                    reply.meta["retries"] = dict(counts)
                    reply.meta["attempts"] = attempts
                reply.cost = paid if paid or reply.cost is not None else None
                return reply
            if key is not None and retires_the_key(failure):
                self.keys.retire(key, failure.message, failure.reason)
                attempts.append(
                    {"http_status": exchange.status, "failure": "key_retired",
                     "error": failure.message, "key": key.label}
                )  # fmt: skip
                counts["key_retired"] += 1
                self.retries["key_retired"] += 1
                continue
            if failure.kind is FailureKind.FATAL:
                self._fatal = f"{self.model}: {failure.message}"
                raise BackendFatalError(self._fatal)
            last = to_reply(exchange, failure)
            paid += self._account(last)
            attempts.append(
                {"http_status": exchange.status, "failure": failure.reason,
                 "error": failure.message, "latency_s": round(exchange.latency_s, 4)}
            )  # fmt: skip
            if key is not None:
                last.meta["key"] = attempts[-1]["key"] = key.label
            last.meta["retries"] = dict(counts)
            last.meta["attempts"] = attempts
            last.cost = paid or None
            if failure.kind is FailureKind.RATE_LIMIT:
                self.limiter.on_rate_limit(failure.retry_after_s)
            counts[failure.kind.value] += 1
            self.retries[failure.kind.value] += 1
            attempt += 1
            if attempt > self.options.max_retries:
                last.meta["retries"] = dict(counts)
                return last
            await asyncio.sleep(self.backoff.delay(attempt, failure.retry_after_s))

    def _must_wait_for_budget(self) -> bool:
        """Near the cap, a call waits until those in flight are paid for, so that at most what
        is left of the budget is in flight (each call estimated at the largest cost seen)."""
        cap = self.options.max_cost_usd
        largest = self.budget.largest
        if cap is None or not largest or not self._sending:
            return False
        return self.budget.spent + (self._sending + 1) * largest > cap

    async def _stop_for_keys(self) -> None:
        """Every key is retired: once this model's calls in flight are back (and journaled by
        their callers), stop with the message that names the keys."""
        while self._sending:
            await self._settled.wait()
        hint = f"continue with --resume {self.run_id}" if self.run_id else "resume the run"
        raise self.keys.exhausted_error(hint)

    async def _send(self, body: dict[str, Any], endpoint: str, key: ApiKey | None) -> Exchange:
        assert self._client is not None, "backend not started"
        if self.on_send is not None:
            self.on_send()
        self._sending += 1
        try:
            return await self._client.post(body, endpoint, api_key=key.value if key else None)
        finally:
            self._sending -= 1
            self._settled.set()  # wake the calls waiting for the budget, then start a new round
            self._settled = asyncio.Event()

    def _account(self, reply: Reply) -> float:
        """Count a reply's reported cost against the run's budget; returns the amount counted.

        An unusable cost (flagged by `reported_cost`) is counted conservatively and the flag
        and raw value stay with the reply.
        """
        usage = reply.response.get("usage") if isinstance(reply.response, dict) else None
        cost, flag = reported_cost(usage)
        if cost is None and flag is None:
            return 0.0
        if flag is not None:
            reply.meta["cost_flag"] = flag
            reply.meta["reported_cost"] = str(usage.get("cost") if isinstance(usage, dict) else "")
        return self.budget.count(cost, flag, self._call_estimate(reply))

    def _call_estimate(self, reply: Reply) -> float:
        """Upper estimate of one call from catalogue prices (0 when they are unknown)."""
        prices = (self._catalogue or {}).get("pricing") or {}
        try:
            prompt, completion = float(prices["prompt"]), float(prices["completion"])
        except (KeyError, TypeError, ValueError):
            return 0.0
        tokens = estimate_request_tokens(reply.request)
        estimate = prompt * tokens + completion * int(reply.request.get("max_tokens") or 0)
        return estimate if math.isfinite(estimate) and estimate > 0 else 0.0

    def set_spent(self, usd: float) -> None:
        """The run's spend so far, summed from its journal (a resume continues the budget)."""
        self.budget = Budget(self.options.max_cost_usd, usd)

    @property
    def spent(self) -> float:
        return self.budget.spent

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        return await self._sample({"messages": [dict(m) for m in messages]}, settings, CHAT)

    async def sample_raw(self, prompt: str, settings: SampleSettings) -> Reply:
        return await self._sample({"prompt": prompt}, settings, COMPLETIONS)

    async def _sample(
        self, prompt: dict[str, Any], settings: SampleSettings, endpoint: str
    ) -> Reply:
        body = self._body(prompt, settings.temperature, settings.max_tokens)
        if settings.seed is not None:
            body["seed"] = settings.seed
        body.update(settings.request_fields)  # an intervention's (-M cannot set the same keys)
        return await self.call(body, endpoint)

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        """Exact mode from `top_logprobs`, when the endpoint returns enough of them."""
        body = self._body({"messages": [dict(m) for m in messages]}, 0.0, 1)
        body.update(logprobs=True, top_logprobs=API_TOP_LOGPROBS)
        return read_exact(await self.call(body), answers, API_TOP_LOGPROBS)

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        """As `distribution`, after a raw prompt: a text completion's `logprobs` is the number
        of candidates (OpenAI's own endpoint allows at most 5 and refuses this request)."""
        body = self._body({"prompt": prompt}, 0.0, 1)
        body["logprobs"] = API_TOP_LOGPROBS
        return read_exact(await self.call(body, COMPLETIONS), answers, API_TOP_LOGPROBS)


class OpenRouterBackend(OpenAICompatibleBackend):
    """OpenRouter (`OPENROUTER_API_KEY`; `OPENROUTER_BASE_URL` overrides the endpoint)."""

    prefix: ClassVar[str] = "openrouter"
    supports_raw: ClassVar[bool] = False
    extra_headers: ClassVar[dict[str, str]] = {"X-OpenRouter-Cache": "false"}

    @property
    def service(self) -> str:
        return "OpenRouter"

    @property
    def url_variable(self) -> str:
        return "OPENROUTER_BASE_URL"

    @property
    def key_variable(self) -> str:
        return "OPENROUTER_API_KEY"

    async def preflight(self) -> None:
        """A name missing from a readable catalogue is a typo: say so before any paid call."""
        await super().preflight()
        if await self.catalogue_entry() is None and self._catalogue_ids:
            close = difflib.get_close_matches(self.remote_model, self._catalogue_ids, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise FlipbenchError(f"OpenRouter has no model {self.remote_model!r}{hint}")

    @classmethod
    def _endpoint(cls, model: str) -> tuple[str, str | None, str]:
        parts = model.split("/", 1)
        if len(parts) != 2 or parts[1].count("/") != 1 or "" in parts[1].split("/"):
            raise FlipbenchError(f"model {model!r} must look like openrouter/<author>/<slug>")
        keys = read_keys(os.environ, "OPENROUTER_API_KEY")
        if not keys:
            raise FlipbenchError(
                "OPENROUTER_API_KEY is not set (nor OPENROUTER_API_KEY_0 … _9); export it, or"
                " put it in a .env file and pass --env-file FILE"
            )
        return _env("OPENROUTER_BASE_URL") or OPENROUTER_URL, keys[0].value, parts[1]
