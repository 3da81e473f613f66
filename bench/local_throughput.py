"""Sampled throughput on the embedded model: flipbench against the raw llama.cpp ceiling.

Three numbers, measured one after the other in this process (ratios are what to compare
across machines; absolute rates are noisy on shared 2-core machines):

* **today's shape** (before issue 12): one completion per request, the answers enforced with a
  grammar, 4 slots, 4 requests in flight;
* **the raw ceiling**: the same server driven with bare aiohttp, one-token answers restricted
  with `logit_bias` and `max_tokens` 1, `n` completions per request; the best of a few
  (slots, n, in-flight, context per slot) shapes;
* **flipbench**: a constrained single-flip run through the runner and journal (the model
  already loaded), samples journaled per second.

All three sample the same distribution (the next token renormalised over "0" and "1").

    .venv/bin/python bench/local_throughput.py [--samples 1600]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from flipbench.progress import SilentReporter
from flipbench.providers.local import LocalBackend, resolve_gguf
from flipbench.runner import Runner, RunSettings
from flipbench.session import request_size
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ResolvedExperiment

PROMPT = (
    'I\'d like you to flip a biased coin that returns "1" 30% of the time and "0" 70% of the'
    " time. Please return a 1 token response simulating a single flip."
)
NEUTRAL = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
GRAMMAR = 'root ::= answer\nanswer ::= "0" | "1"'
# (slots, completions per request, requests in flight, context per slot) tried for the
# ceiling; today's shape had 2,048 tokens a slot, and a slot's size alone is ~3x in rate.
CEILING_SHAPES = (
    (16, 16, 1, 2048), (32, 8, 4, 2048), (48, 16, 3, 2048),
    (16, 16, 1, 256), (32, 8, 4, 256), (48, 16, 3, 256), (64, 16, 4, 256),
)  # fmt: skip


def _server(slots: int, context: int = 2048) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(resolve_gguf("local/smollm2"))
    params.n_parallel = slots
    params.n_ctx = context * slots
    params.warmup = False
    params.verbosity = -1
    return xllamacpp.Server(params)


async def _rate(url: str, body: dict[str, Any], in_flight: int, total: int) -> float:
    """Completions per second until `total` have come back."""
    done = 0
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal done
            while done < total:
                async with session.post(url, json=body) as resp:
                    data = await resp.json()
                done += len(data["choices"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return done / (time.perf_counter() - started)


async def _raw(
    slots: int, body: dict[str, Any], in_flight: int, total: int, context: int = 2048
) -> float:
    server = _server(slots, context)
    url = str(server.listening_address).rstrip("/") + "/v1/chat/completions"
    await _rate(url, body, in_flight, 2 * in_flight)  # warm the slots
    rate = await _rate(url, body, in_flight, total)
    del server
    return rate


async def timed_run(
    experiment: ResolvedExperiment, backend: LocalBackend, mode: str, concurrency: int
) -> tuple[float, int]:
    """Seconds the runner takes to finish `experiment` on `backend` (started here; the model's
    load is not counted) and the valid rows it journaled; the backend is closed after."""
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "bench.db")
        journal.create_run(
            run_id="r", experiment=experiment.name, model=backend.model, mode=mode, config={},
            definition=experiment.model_dump(mode="json"),
            definition_hash=experiment.definition_hash(), versions={},
        )  # fmt: skip
        await backend.start(concurrency=concurrency, exact=mode == "exact")
        try:
            settings = RunSettings(mode, concurrency, mode == "sample", 2.0, 2026)
            runner = Runner(journal, "r", experiment, backend, settings, SilentReporter())
            started = time.perf_counter()
            await runner.run()
            elapsed = time.perf_counter() - started
        finally:
            await backend.close()
        valid = sum(1 for r in journal.samples("r") if r["valid"])
        journal.close()
    return elapsed, valid


async def _flipbench(samples: int) -> tuple[float, str]:
    experiment = get_experiment("single-flip").resolve(p_values=["30"], n=samples)
    backend = LocalBackend("local/smollm2")
    backend.size_for(*request_size(experiment))  # as a run sizes its slots
    n, context = backend.completions, backend.slot_context
    shape = f"n {n}, {4 * n} slots of {context} tokens"
    elapsed, valid = await timed_run(experiment, backend, "sample", 4)
    return valid / elapsed, shape


async def main(samples: int) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    today = await _raw(4, {"messages": messages, **NEUTRAL, "max_tokens": 16, "grammar": GRAMMAR},
                       4, max(200, samples // 8))  # fmt: skip
    print(f"today's shape (grammar, n 1, 4 slots, 4 in flight): {today:7.1f} samples/s")
    best, best_shape = 0.0, CEILING_SHAPES[0]
    for slots, n, in_flight, context in CEILING_SHAPES:
        body = {"messages": messages, **NEUTRAL, "max_tokens": 1, "n": n,
                "logit_bias": [[32, 100.0], [33, 100.0]]}  # fmt: skip
        rate = await _raw(slots, body, in_flight, samples, context)
        print(
            f"raw: logit_bias, n {n:2}, {slots} slots of {context} tokens,"
            f" {in_flight} in flight: {rate:7.1f} samples/s"
        )
        if rate > best:
            best, best_shape = rate, (slots, n, in_flight, context)
    ours, shape = await _flipbench(samples)
    print(f"flipbench ({shape}, journaled): {ours:7.1f} samples/s")
    print(f"flipbench / raw ceiling {best_shape}: {ours / best:.2f}x (target >= 0.8)")
    print(f"flipbench / today's shape: {ours / today:.1f}x (target >= 5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1600)
    asyncio.run(main(parser.parse_args().samples))
