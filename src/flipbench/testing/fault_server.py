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
client's journal can be checked against what it was charged. ``omit_from_top``, ``top_extra``,
``top_k_cap`` and ``top_filler_p`` script what exact mode's ``top_logprobs`` lists show (an
answer below the top k, a first token two answers share).

``scripts`` (a ``ModelScript`` per model name) gives each model its own behaviour on a server
that lists many: a known bias, dead with a fatal status, rate-limited, its own price (a sweep's
test); ``model_counts`` counts the chat requests per model.

Use it in-process (``await FaultServer(cfg).start()`` or ``running_in_thread(cfg)``) or as a
separate process: ``python -m flipbench.testing.fault_server --port 0 --latency-s 0.05``.

The server is split by job: the fault script (`fault_config`), the wire shapes
(`openrouter_wire`), the hostile shapes (`hostile`) and the server itself (`fault_app`); this
module runs it (in a thread, or as a process with its command line) and re-exports the names
tests and benchmarks use, so ``flipbench.testing.fault_server`` stays the one import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterator
from typing import Any

from flipbench.testing.fault_app import HOST, FaultServer
from flipbench.testing.fault_config import FATAL_MODES, FAULT_KINDS, FaultConfig, ModelScript
from flipbench.testing.hostile import (
    DEEP_JSON_DEPTH,
    ERROR_ANSI_MESSAGE,
    EVIL_URL,
    HOSTILE_SHAPES,
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
    "ModelScript",
    "running_in_thread",
]


@contextlib.contextmanager
def running_in_thread(
    config: FaultConfig,
    *,
    port: int = 0,
    models: list[dict[str, Any]] | None = None,
    scripts: dict[str, ModelScript] | None = None,
) -> Iterator[FaultServer]:
    """Serve from a daemon thread's own loop, so synchronous code and other loops can use it."""
    server = FaultServer(config, port=port, models=models, scripts=scripts)
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
