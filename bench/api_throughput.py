"""API request throughput: flipbench against the peers' scheme and a bare aiohttp loop.

A scripted OpenRouter-format server runs as a separate process on loopback and answers every
chat completion after `--latency-s` (200 ms). Three clients then send the same number of
requests (2,100 = the default single-flip grid × 100), one after the other in this run:

* peers' scheme: batches of 20 concurrent requests with a fixed 2 s sleep between batches
  (what the Failure-to-Mix code and similar tools do);
* bare aiohttp: one session, a `--max-concurrency`-way semaphore, POST and parse JSON — the
  ceiling for this client library at that concurrency;
* flipbench: a real `single-flip` run (adaptive limiter, retries, parsing, one SQLite journal
  row per reply) with the same concurrency cap.

Absolute rates are noisy on shared 2-core machines; the printed ratios are what to compare.
A second part times the fault run of issue 4 (10 % 429 with Retry-After 1, 5 % HTTP-200 error
bodies, 2 % hangs of 30 s, 1 % malformed bodies) with default settings.

    .venv/bin/python bench/api_throughput.py [--requests 2100] [--peer-requests 2100] [--no-faults]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import aiohttp

from flipbench.api import start_run
from flipbench.config import RunConfig
from flipbench.store import Journal

BODY = {
    "model": "fault/model",
    "messages": [{"role": "user", "content": "Flip a coin. Answer 0 or 1."}],
    "temperature": 1.0,
    "max_tokens": 1024,
}


@contextmanager
def server_process(*flags: str) -> Iterator[str]:
    """Start the fault server as its own process and yield its /v1 URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flipbench.testing.fault_server", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://\S+", line)
        if match is None:
            raise RuntimeError(f"fault server did not start: {line!r}")
        yield match.group(0) + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _post(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url, json=BODY) as response:
        data = await response.json()
        if response.status != 200 or not data.get("choices"):
            raise RuntimeError(f"unexpected reply {response.status}: {data}")


async def peer_scheme(url: str, requests: int, batch: int = 20, sleep_s: float = 2.0) -> float:
    """Batches of `batch` concurrent requests, a fixed sleep after each batch."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        sent = 0
        while sent < requests:
            size = min(batch, requests - sent)
            await asyncio.gather(*(_post(session, url) for _ in range(size)))
            sent += size
            if sent < requests:
                await asyncio.sleep(sleep_s)
    return time.perf_counter() - started


async def bare_aiohttp(url: str, requests: int, concurrency: int) -> float:
    """The same requests through one session under a fixed semaphore: the client's ceiling."""
    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with gate:
                await _post(session, url)

        await asyncio.gather(*(one() for _ in range(requests)))
    return time.perf_counter() - started


def flipbench_run(base_url: str, n: int, concurrency: int | None, db: Path) -> tuple[float, float]:
    """A real single-flip run of 21 × n valid samples: its wall time (journal set-up, requests,
    results and figure) and its request phase (first request sent → last reply journaled)."""
    os.environ["OPENROUTER_BASE_URL"] = base_url
    started = time.perf_counter()
    outcome = start_run(
        RunConfig(model="openrouter/fault/model", n=n, max_concurrency=concurrency),
        db,
        progress=False,
    )
    elapsed = time.perf_counter() - started
    assert outcome.status == "complete", outcome.message
    with Journal(db, create=False) as journal:
        counts = journal.condition_counts(outcome.run_id)
        rows = [(r["created_at"], r["latency_s"] or 0.0) for r in journal.samples(outcome.run_id)]
    valid = sorted({v for v, _, _ in counts.values()})
    assert valid == [n], f"expected exactly {n} valid per p, got {valid}"
    stamps = [(datetime.fromisoformat(t).timestamp(), lat) for t, lat in rows]
    first_sent = min(t - lat for t, lat in stamps)
    print(f"  retries by class: {outcome.retries or {}}")
    return elapsed, max(t for t, _ in stamps) - first_sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2100, help="multiple of 21")
    parser.add_argument("--peer-requests", type=int, default=2100, help="peers' scheme is slow")
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--no-faults", action="store_true", help="skip the fault run")
    args = parser.parse_args()
    n = args.requests // 21
    os.environ.setdefault("OPENROUTER_API_KEY", "sk-bench-dummy")
    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with server_process("--latency-s", str(args.latency_s)) as url:
            peer = asyncio.run(peer_scheme(url + "/chat/completions", args.peer_requests))
            rows.append(("peers' scheme (20 per batch + 2 s)", args.peer_requests, peer))
            bare = asyncio.run(
                bare_aiohttp(url + "/chat/completions", 21 * n, args.max_concurrency)
            )
            rows.append((f"bare aiohttp ({args.max_concurrency}-way)", 21 * n, bare))
            ours, phase = flipbench_run(url, n, args.max_concurrency, Path(tmp) / "bench.db")
            rows.append((f"flipbench run (cap {args.max_concurrency}, end to end)", 21 * n, ours))
            rows.append(("flipbench request phase (journaled)", 21 * n, phase))
        print(f"\n{'client':<40}{'requests':>9}{'wall s':>9}{'req/s':>9}")
        for name, count, wall in rows:
            print(f"{name:<40}{count:>9}{wall:>9.1f}{count / wall:>9.1f}")
        rate = {name: count / wall for name, count, wall in rows}
        peer_rate, bare_rate = rate[rows[0][0]], rate[rows[1][0]]
        end_to_end, requests = rate[rows[2][0]], rate[rows[3][0]]
        print(f"flipbench / peers' scheme: {requests / peer_rate:.1f}x requests,"
              f" {end_to_end / peer_rate:.1f}x end to end  (target >= 25x)")  # fmt: skip
        print(f"flipbench / bare aiohttp:  {requests / bare_rate:.0%} requests,"
              f" {end_to_end / bare_rate:.0%} end to end  (target >= 80 %)")  # fmt: skip
        if not args.no_faults:
            faults = [
                "--seed", "1", "--rate-limit", "0.10", "--retry-after-s", "1",
                "--error-200", "0.05", "--hang", "0.02", "--hang-s", "30", "--malformed", "0.01",
            ]  # fmt: skip
            print("\nfault run (21 p × 100, default timeout and concurrency):")
            with server_process(*faults) as url:
                wall, _ = flipbench_run(url, 100, None, Path(tmp) / "faults.db")
            print(f"  exactly 100 valid per p in {wall:.1f} s  (target < 120 s)")


if __name__ == "__main__":
    main()
