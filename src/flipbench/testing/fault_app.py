"""The fault server itself: an aiohttp app that plays a `FaultConfig` on OpenRouter's wire format.

Kept apart from the script (`fault_config`), the wire shapes (`openrouter_wire`) and the ways of
running it (`fault_server`: in a thread, or as its own process) so that what happens to one
request (count it, draw its fate, sleep, answer, bill it) reads top to bottom in one class. Two
numbers are drawn per request from a seeded RNG, so a run is reproducible when requests are sent
sequentially; ``billed_usd`` sums what every reply sent would have cost the client.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

from aiohttp import web

from flipbench.testing.fault_config import (
    DEFAULT_MODELS,
    FATAL,
    FAULT_KINDS,
    FaultConfig,
    ModelScript,
    check_config,
    fault_probabilities,
    key_credits,
    omitted_from_top,
    top_extra_candidates,
)
from flipbench.testing.hostile import (
    COST_KEY,
    ERROR_ANSI_MESSAGE,
    LITERAL_CONTENT,
    RAW_BODIES,
    Echo,
    billable,
    costed,
    hostile_reply,
    hostile_shapes,
    total,
)
from flipbench.testing.openrouter_wire import (
    ECHO_RE,
    LABELS_RE,
    SERVER_ERROR_MESSAGES,
    TopList,
    error_response,
    json_response,
    logprobs_json,
    prompt_text,
    usage_json,
)

HOST = "127.0.0.1"


class FaultServer:
    """The server; all mutable state lives on its event loop, counters are read under a lock."""

    def __init__(
        self,
        config: FaultConfig,
        *,
        port: int = 0,
        models: list[dict[str, Any]] | None = None,
        scripts: dict[str, ModelScript] | None = None,
    ) -> None:
        check_config(config)
        for script in (scripts or {}).values():
            script.check()
        # Per-model behaviour by the request's `model` (a sweep's test: known biases, dead
        # models, rate limits, prices), and how many chat requests named each model.
        self.scripts = dict(scripts or {})
        self._model_counts: Counter[str] = Counter()
        self._shapes = hostile_shapes(config.hostile)
        self._top_list = TopList(
            omitted_from_top(config), tuple(top_extra_candidates(config)), config.top_k_cap,
            config.top_filler_p,
        )  # fmt: skip
        self._shape_index = 0
        self.config = config
        self.port = port
        self.base_url = ""
        self.models = models if models is not None else DEFAULT_MODELS
        probs = fault_probabilities(config)
        self._bands = list(zip(FAULT_KINDS, itertools.accumulate(probs), strict=True))
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._bodies: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._billed: list[float] = []
        self._undelivered: list[float] = []
        # Per-key credit: calls each key still pays for, and requests seen per key.
        self._credits = key_credits(config)
        self._key_counts: Counter[str] = Counter()
        self._key_refused: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Future[None] | None = None

    async def start(self) -> str:
        """Bind 127.0.0.1 and return the base URL ``http://127.0.0.1:PORT/api/v1``."""
        app = web.Application()
        for prefix in ("/api/v1", "/v1", ""):
            app.router.add_post(prefix + "/chat/completions", self._chat)
            app.router.add_get(prefix + "/models", self._models)
        # shutdown_timeout is only a backstop: stop() wakes sleeping handlers itself.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        self.port = site.port
        self._stopping = asyncio.get_running_loop().create_future()
        self.base_url = f"http://{HOST}:{self.port}/api/v1"
        return self.base_url

    async def stop(self) -> None:
        """Wake every hanging or delayed handler (they answer 503), then close the server."""
        if self._stopping is not None and not self._stopping.done():
            self._stopping.set_result(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def counts(self) -> dict[str, int]:
        """Keys: "requests", "ok", and one per fault kind or rejection that happened."""
        with self._lock:
            return dict(self._counts)

    @property
    def model_counts(self) -> dict[str, int]:
        """Chat requests received per requested model name (every model, scripted or not)."""
        with self._lock:
            return dict(self._model_counts)

    @property
    def billed_usd(self) -> float:
        """Sum of the finite, non-negative ``usage.cost`` of every reply sent (inf on overflow).

        A reply is billed when the server sends it, as OpenRouter bills a finished generation
        whether or not the client still listens; ``undelivered_usd`` is the part of it whose
        connection was already closed (the client cancelled, timed out or was killed).
        ``counts["billed"]`` and ``counts["billed_undelivered"]`` count those replies.
        """
        return total(self.billed_costs)

    @property
    def billed_costs(self) -> list[float]:
        """The cost of each billed reply, in the order they were sent."""
        with self._lock:
            return list(self._billed)

    @property
    def undelivered_usd(self) -> float:
        """The billed cost of replies sent to a connection that was already closed."""
        with self._lock:
            costs = list(self._undelivered)
        return total(costs)

    @property
    def key_counts(self) -> dict[str, int]:
        """Chat requests per key (`key_credits` keys only), refused ones included."""
        with self._lock:
            return dict(self._key_counts)

    @property
    def key_refused(self) -> dict[str, int]:
        """Requests per key answered 402 because the key's credit was spent."""
        with self._lock:
            return dict(self._key_refused)

    def _spend_credit(self, request: web.Request) -> web.Response | None:
        """A 402 for a key whose credit is spent (the wire format of an OpenRouter account out
        of credit), None when the call may go on (unknown keys were refused with a 401)."""
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if key not in self._credits:  # `api_key`: no credit limit
            return None
        with self._lock:
            self._key_counts[key] += 1
            spent = self._credits[key] <= 0
            if spent:
                self._key_refused[key] += 1
            else:
                self._credits[key] -= 1
        if not spent:
            return None
        self._count("no_credits")
        meta = {"limit_source": "openrouter_credits"}
        return self._error(request, 402, 402, FATAL["402"][1], meta)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """Request bodies received (only with ``record_bodies=True``)."""
        with self._lock:
            return list(self._bodies)

    @property
    def headers(self) -> list[dict[str, str]]:
        """Request headers received, names as the client sent them (``record_bodies=True``)."""
        with self._lock:
            return list(self._headers)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True means "stopping, give up"."""
        if seconds > 0 and self._stopping is not None:
            await asyncio.wait([self._stopping], timeout=seconds)
        return self._stopping is not None and self._stopping.done()

    async def _models(self, request: web.Request) -> web.Response:
        self._count("models")
        return json_response({"data": self.models})

    async def _chat(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        self._bill(request, response)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        cfg = self.config
        raw = await request.read()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError:
            body = None
        with self._lock:
            self._counts["requests"] += 1
            if cfg.record_bodies:
                self._bodies.append(body if body is not None else {"_raw": raw.decode("replace")})
                self._headers.append(dict(request.headers))
        if cfg.api_key is not None or self._credits:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                self._count("unauthorized")
                return self._error(request, 401, 401, "No auth credentials found")
            if auth[len("Bearer ") :] not in (cfg.api_key, *self._credits):
                self._count("unauthorized")
                return self._error(request, 401, 401, "User not found.")
        if body is None:
            self._count("bad_request")
            meta = {"reason": "body is not a JSON object"}
            return self._error(request, 400, 400, "Invalid request", meta)
        model = str(body.get("model") or "fault/model")
        script = self.scripts.get(model, ModelScript())
        with self._lock:
            self._model_counts[model] += 1
        fatal = script.fatal or cfg.fatal
        if fatal is not None:
            self._count(f"fatal_{fatal}")
            status, message = FATAL[fatal]
            return self._error(request, status, status, message.format(model=model), {})
        # Credit is spent by the calls that reach a model (a 404 costs nothing).
        if self._credits and (refused := self._spend_credit(request)) is not None:
            return refused
        # Draw exactly two numbers per request so outcome sequences stay aligned for a seed.
        u_fault, u_answer = self._rng.random(), self._rng.random()
        if script.rate_limit is not None:  # this model's own 429 share replaces the bands
            kind = "rate_limit" if u_fault < script.rate_limit else "ok"
        else:
            kind = next((k for k, edge in self._bands if u_fault < edge), "ok")
        self._count(kind)
        if await self._sleep(cfg.latency_s):
            return self._error(request, 503, 503, "Fault server shutting down")
        return await self._reply(request, kind, body, model, u_answer, script)

    def _error(
        self,
        request: web.Request,
        status: int,
        code: int,
        message: str,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """OpenRouter's error envelope, echoing the caller's secrets with ``echo_secrets``."""
        if self.config.echo_secrets:
            echo = Echo(request)
            message = f"{message} (received {echo.summary})"
            metadata = {**(metadata or {}), **echo.metadata}
            headers = {**(headers or {}), **echo.headers}
        return error_response(status, code, message, metadata, headers)

    def _bill(self, request: web.Request, response: web.Response) -> None:
        cost = billable(response.get(COST_KEY))
        if cost is None:
            return
        transport = request.transport
        delivered = transport is not None and not transport.is_closing()
        with self._lock:
            self._counts["billed"] += 1
            self._billed.append(cost)
            if not delivered:
                self._counts["billed_undelivered"] += 1
                self._undelivered.append(cost)

    def _next_shape(self) -> str:
        """The next hostile shape, cycling in order; only called at the reply stage."""
        shape = self._shapes[self._shape_index % len(self._shapes)]
        self._shape_index += 1
        self._count(f"hostile_{shape}")
        return shape

    async def _reply(
        self,
        request: web.Request,
        kind: str,
        body: dict[str, Any],
        model: str,
        u_answer: float,
        script: ModelScript | None = None,
    ) -> web.Response:
        cfg = self.config
        script = script or ModelScript()
        cost = cfg.cost_per_call if script.cost_per_call is None else script.cost_per_call
        retry = {"Retry-After": f"{cfg.retry_after_s:g}"}
        if kind == "rate_limit":
            return self._error(request, 429, 429, "Rate limit exceeded", {}, retry)
        if kind == "in_flight_402":
            meta = {"limit_source": "in_flight", "reason": "in_flight_budget_exhausted"}
            return self._error(request, 402, 402, "In-flight budget exhausted", meta, retry)
        if kind == "error_200":
            return self._error(request, 200, 502, "Upstream provider error")
        if kind == "server_error":
            status = cfg.server_error_status
            message = SERVER_ERROR_MESSAGES.get(status, "Server error")
            return self._error(request, status, status, message)
        if kind == "server_error_text":
            text = "500 Internal Server Error\n\nThe upstream server failed to answer.\n"
            echo_headers = None
            if cfg.echo_secrets:
                echo = Echo(request)
                text += f"\nRequest was:\n{echo.raw}\n"
                echo_headers = echo.headers
            return web.Response(
                text=text, status=500, content_type="text/plain", headers=echo_headers
            )
        if kind == "malformed":
            return web.Response(text='{"choices": [', content_type="application/json")
        if kind == "hang" and await self._sleep(cfg.hang_s):
            return self._error(request, 503, 503, "Fault server shutting down")
        shape = self._next_shape() if self._shapes and kind in ("ok", "hang") else None
        if shape == "error_ansi":
            return self._error(request, 200, 502, ERROR_ANSI_MESSAGE)
        if shape in RAW_BODIES:
            text, content_type = RAW_BODIES[shape]
            return web.Response(text=text, content_type=content_type)
        p1 = cfg.p_one if script.p_one is None else script.p_one
        if cfg.echo_p and (m := ECHO_RE.search(prompt_text(body))):
            p1 = min(1.0, max(0.0, float(m.group(1)) / 100.0))
        gen_id = f"gen-{uuid.uuid4().hex}"
        reply: dict[str, Any] = {
            "id": gen_id,
            "provider": "FaultyProvider",
            "model": model,
            "object": "chat.completion",
            "created": int(time.time()),
        }
        headers = {"X-Generation-Id": gen_id}
        usage = usage_json(40, 1, cost)
        if kind == "no_choices":
            reply.update(choices=[], usage=usage_json(40, 0, 0.0))
            return costed(json_response(reply, headers=headers), 0.0)
        answer, finish, reasoning = ("1" if u_answer < p1 else "0"), "stop", None
        labels = LABELS_RE.search(prompt_text(body))  # the sweep's prompt with other labels:
        if labels and {labels.group(1), labels.group(2)} != {"0", "1"}:  # p1: the listed first
            answer = f"Output: {labels.group(1 if u_answer < p1 else 2)}"
        if script.structured and isinstance(body.get("response_format"), dict):
            answer = json.dumps({"answer": answer})
        if shape in LITERAL_CONTENT:
            answer = "1"  # the literal contents all read as "1"; logprobs match it
        if kind == "empty_length":
            max_tokens = body.get("max_tokens")
            spent = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 16
            answer, finish, reasoning = "", "length", "Let me think about the coin..."
            usage = usage_json(40, spent, cost, reasoning_tokens=spent)
        elif kind == "cache_hit":
            headers["X-OpenRouter-Cache-Status"] = "HIT"
            usage = usage_json(0, 0, 0.0)
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": finish,
            "native_finish_reason": finish,
            "message": {"role": "assistant", "content": answer, "reasoning": reasoning},
        }
        if body.get("logprobs") is True and cfg.logprobs:
            top = body.get("top_logprobs")
            choice["logprobs"] = logprobs_json(answer, p1, top, self._top_list)
        reply.update(choices=[choice], usage=usage)
        if shape is None:
            return costed(json_response(reply, headers=headers), usage["cost"])
        return hostile_reply(shape, reply, answer, cfg.huge_bytes, headers)
