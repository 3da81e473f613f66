"""A scripted loopback server that speaks OpenRouter's chat-completions wire format.

OpenRouter cannot be reached from the test machines, so clients are tested (and benchmarked)
against this server instead. It reproduces OpenRouter's replies *and* its failures (429 with
Retry-After, HTTP-200 error bodies, 5xx, hangs, malformed JSON, empty reasoning-model replies,
cache hits, in-flight 402, fatal 4xx) with per-request probabilities drawn from a seeded RNG, so
a run is reproducible when requests are sent sequentially.

It can also play a hostile server: ``hostile`` replaces every otherwise-successful reply with one
of ``HOSTILE_SHAPES`` (malformed shapes, absurd costs, injection payloads, huge or deep bodies),
and ``echo_secrets`` makes every error reply echo the caller's Authorization header and request
headers in its body and response headers. ``billed_usd`` sums the cost of every reply sent, so a
client's journal can be checked against what it was charged.

Use it in-process (``await FaultServer(cfg).start()`` or ``running_in_thread(cfg)``) or as a
separate process: ``python -m flipbench.testing.fault_server --port 0 --latency-s 0.05``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from flipbench.testing.hostile import (
    COST_KEY,
    DEEP_JSON_DEPTH,
    ERROR_ANSI_MESSAGE,
    EVIL_URL,
    HOSTILE_SHAPES,
    LITERAL_CONTENT,
    RAW_BODIES,
    Echo,
    billable,
    costed,
    hostile_reply,
    hostile_shapes,
    total,
)

__all__ = [
    "DEEP_JSON_DEPTH",
    "ERROR_ANSI_MESSAGE",
    "EVIL_URL",
    "FATAL_MODES",
    "FAULT_KINDS",
    "HOSTILE_SHAPES",
    "FaultConfig",
    "FaultServer",
    "running_in_thread",
]

HOST = "127.0.0.1"
#: Fault kinds in the order their probability bands are laid out on [0, 1).
FAULT_KINDS = (
    "rate_limit",
    "error_200",
    "server_error",
    "hang",
    "malformed",
    "no_choices",
    "empty_length",
    "cache_hit",
    "in_flight_402",
    "server_error_text",
)
_ECHO_RE = re.compile(r'returns "1" (\d+(?:\.\d+)?)% of the time')
_ZERO_PROB_LOGPROB = -9999.0  # what OpenAI-style servers report for a zero-probability token
_DEFAULT_MODELS: list[dict[str, Any]] = [
    {
        "id": "fault/model",
        "pricing": {"prompt": "0.0000001", "completion": "0.0000002"},
        "supported_parameters": [
            "temperature",
            "max_tokens",
            "logprobs",
            "top_logprobs",
            "reasoning",
        ],
        "context_length": 8192,
    }
]
_FATAL = {
    "400": (400, "Invalid request"),
    "401": (401, "User not found."),
    "402": (402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"),
    "404": (404, "No endpoints found for {model}."),
}
FATAL_MODES = tuple(_FATAL)
_SERVER_ERROR_MESSAGES = {
    500: "Internal Server Error",
    502: "Upstream provider error",
    503: "No available provider meets your routing requirements",
}


@dataclass
class FaultConfig:
    """Server behaviour; each fault field is that fault's probability per request."""

    latency_s: float = 0.0
    p_one: float = 0.7
    echo_p: bool = False
    seed: int = 0
    rate_limit: float = 0.0
    retry_after_s: float = 1.0
    error_200: float = 0.0
    server_error: float = 0.0
    server_error_status: int = 502
    hang: float = 0.0
    hang_s: float = 30.0
    malformed: float = 0.0
    no_choices: float = 0.0
    empty_length: float = 0.0
    cache_hit: float = 0.0
    in_flight_402: float = 0.0
    fatal: str | None = None
    api_key: str | None = None
    cost_per_call: float = 0.00001
    record_bodies: bool = False
    logprobs: bool = True  # False: like providers that return null logprobs without an error
    server_error_text: float = 0.0  # a 500 whose body is plain text, not JSON
    hostile: str | None = None  # a HOSTILE_SHAPES name, "all", or a comma-separated list
    huge_bytes: int = 10_000_000  # filler after the answer in the "huge" shape
    echo_secrets: bool = False  # error replies echo the Authorization header and all headers


def _error(
    status: int,
    code: int,
    message: str,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """OpenRouter's error envelope; `status` differs from `code` for HTTP-200 errors."""
    err: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        err["metadata"] = metadata
    return _json({"error": err}, status=status, headers=headers)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(obj), status=status, headers=headers, content_type="application/json"
    )


def _logprob(p: float) -> float:
    return math.log(p) if p > 0 else _ZERO_PROB_LOGPROB


def _prompt_text(body: dict[str, Any]) -> str:
    """All message text, whether `content` is a string or a list of typed parts."""
    parts: list[str] = []
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


class FaultServer:
    """The server; all mutable state lives on its event loop, counters are read under a lock."""

    def __init__(
        self, config: FaultConfig, *, port: int = 0, models: list[dict[str, Any]] | None = None
    ) -> None:
        probs = [getattr(config, k) for k in FAULT_KINDS]
        if any(not 0.0 <= p <= 1.0 for p in probs) or sum(probs) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must lie in [0, 1] and sum to at most 1")
        if config.fatal is not None and config.fatal not in FATAL_MODES:
            raise ValueError(f"fatal must be one of {FATAL_MODES} or None")
        if not 500 <= config.server_error_status <= 599:
            raise ValueError("server_error_status must be a 5xx status")
        if config.huge_bytes < 0:
            raise ValueError("huge_bytes must be >= 0")
        self._shapes = hostile_shapes(config.hostile)
        self._shape_index = 0
        self.config = config
        self.port = port
        self.base_url = ""
        self.models = models if models is not None else _DEFAULT_MODELS
        self._bands = list(zip(FAULT_KINDS, itertools.accumulate(probs), strict=True))
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._bodies: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._billed: list[float] = []
        self._undelivered: list[float] = []
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
        return _json({"data": self.models})

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
        if cfg.api_key is not None:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                self._count("unauthorized")
                return self._error(request, 401, 401, "No auth credentials found")
            if auth[len("Bearer ") :] != cfg.api_key:
                self._count("unauthorized")
                return self._error(request, 401, 401, "User not found.")
        if body is None:
            self._count("bad_request")
            meta = {"reason": "body is not a JSON object"}
            return self._error(request, 400, 400, "Invalid request", meta)
        model = str(body.get("model") or "fault/model")
        if cfg.fatal is not None:
            self._count(f"fatal_{cfg.fatal}")
            status, message = _FATAL[cfg.fatal]
            return self._error(request, status, status, message.format(model=model), {})
        # Draw exactly two numbers per request so outcome sequences stay aligned for a seed.
        u_fault, u_answer = self._rng.random(), self._rng.random()
        kind = next((k for k, edge in self._bands if u_fault < edge), "ok")
        self._count(kind)
        if await self._sleep(cfg.latency_s):
            return self._error(request, 503, 503, "Fault server shutting down")
        return await self._reply(request, kind, body, model, u_answer)

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
        return _error(status, code, message, metadata, headers)

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
        self, request: web.Request, kind: str, body: dict[str, Any], model: str, u_answer: float
    ) -> web.Response:
        cfg = self.config
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
            message = _SERVER_ERROR_MESSAGES.get(status, "Server error")
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
        p1 = cfg.p_one
        if cfg.echo_p and (m := _ECHO_RE.search(_prompt_text(body))):
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
        usage = _usage(40, 1, cfg.cost_per_call)
        if kind == "no_choices":
            reply.update(choices=[], usage=_usage(40, 0, 0.0))
            return costed(_json(reply, headers=headers), 0.0)
        answer, finish, reasoning = ("1" if u_answer < p1 else "0"), "stop", None
        if shape in LITERAL_CONTENT:
            answer = "1"  # the literal contents all read as "1"; logprobs match it
        if kind == "empty_length":
            max_tokens = body.get("max_tokens")
            spent = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 16
            answer, finish, reasoning = "", "length", "Let me think about the coin..."
            usage = _usage(40, spent, cfg.cost_per_call, reasoning_tokens=spent)
        elif kind == "cache_hit":
            headers["X-OpenRouter-Cache-Status"] = "HIT"
            usage = _usage(0, 0, 0.0)
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": finish,
            "native_finish_reason": finish,
            "message": {"role": "assistant", "content": answer, "reasoning": reasoning},
        }
        if body.get("logprobs") is True and cfg.logprobs:
            choice["logprobs"] = _logprobs(answer, p1, body.get("top_logprobs"))
        reply.update(choices=[choice], usage=usage)
        if shape is None:
            return costed(_json(reply, headers=headers), usage["cost"])
        return hostile_reply(shape, reply, answer, cfg.huge_bytes, headers)


def _usage(prompt: int, completion: int, cost: float, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _logprobs(answer: str, p1: float, top: Any) -> dict[str, Any] | None:
    """Exact log-probabilities of "1"/"0"; null for an empty reply, as providers do."""
    if not answer:
        return None
    n = top if isinstance(top, int) and top > 0 else 0
    alternatives = [
        {"token": "1", "logprob": _logprob(p1)},
        {"token": "0", "logprob": _logprob(1.0 - p1)},
    ]
    lp = _logprob(p1 if answer == "1" else 1.0 - p1)
    return {"content": [{"token": answer, "logprob": lp, "top_logprobs": alternatives[:n]}]}


@contextlib.contextmanager
def running_in_thread(
    config: FaultConfig, *, port: int = 0, models: list[dict[str, Any]] | None = None
) -> Iterator[FaultServer]:
    """Serve from a daemon thread's own loop, so synchronous code and other loops can use it."""
    server = FaultServer(config, port=port, models=models)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="fault-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)


def _parser() -> argparse.ArgumentParser:
    """One flag per FaultConfig field (``latency_s`` -> ``--latency-s``), plus ``--port``."""
    parser = argparse.ArgumentParser(
        prog="python -m flipbench.testing.fault_server",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    for f in dataclasses.fields(FaultConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        elif f.default is None:
            choices = FATAL_MODES if f.name == "fatal" else None
            shapes = f"'all', or a comma-separated list of: {', '.join(HOSTILE_SHAPES)}"
            help_ = shapes if f.name == "hostile" else None
            parser.add_argument(flag, type=str, default=None, choices=choices, help=help_)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    return parser


async def _serve(config: FaultConfig, port: int) -> None:
    server = FaultServer(config, port=port)
    await server.start()
    print(f"listening on http://{HOST}:{server.port}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the server until SIGTERM/SIGINT (for benchmarks in a separate process)."""
    args = vars(_parser().parse_args(argv))
    port = args.pop("port")
    try:
        config = FaultConfig(**args)
        FaultServer(config)  # validate before binding
    except ValueError as exc:
        raise SystemExit(f"fault_server: {exc}") from None
    asyncio.run(_serve(config, port))


if __name__ == "__main__":
    main()
