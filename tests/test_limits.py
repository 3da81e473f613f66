"""Adaptive concurrency, backoff and the cost budget."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from flipbench.providers.limits import AdaptiveLimiter, Backoff, Budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_initial_limit_defaults_to_sixteen_within_cap() -> None:
    assert AdaptiveLimiter(64).limit == 16
    assert AdaptiveLimiter(4).limit == 4
    assert AdaptiveLimiter(64, initial=2).limit == 2
    assert AdaptiveLimiter(8, initial=100).limit == 8
    with pytest.raises(ValueError):
        AdaptiveLimiter(0)


def test_slow_start_grows_by_one_per_success_until_the_first_rate_limit() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, initial=4, grow_after=3, clock=clock)
    for _ in range(4):
        limiter.on_success()
    assert limiter.limit == 8  # one round trip of 4 successes doubled it
    limiter.on_rate_limit(None)
    assert limiter.limit == 4
    for _ in range(2):
        limiter.on_success()
    assert limiter.limit == 4  # congestion avoidance now: +1 per 3 successes
    limiter.on_success()
    assert limiter.limit == 5


def test_grows_by_one_after_grow_after_successes_up_to_cap() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(6, initial=4, grow_after=3, clock=clock)
    limiter.on_rate_limit(None)  # leave slow start
    assert limiter.limit == 2
    for _ in range(2):
        limiter.on_success()
    assert limiter.limit == 2
    limiter.on_success()
    assert limiter.limit == 3
    for _ in range(30):
        limiter.on_success()
    assert limiter.limit == 6
    assert limiter.stats == {"cuts": 1, "grows": 4, "max_limit_seen": 6}


def test_random_rate_limits_cut_once_per_window_not_once_per_429() -> None:
    """10 % of requests rejected at random (not for load) must not pin the limit near 1."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(
        64, grow_after=4, default_cooldown_s=0.05, cut_window_s=1.0,
        pause_for_retry_after=False, clock=clock,
    )  # fmt: skip
    rng = random.Random(3)
    lowest_late = 64
    for step in range(5000):  # ~300 requests per second
        clock.now += 1 / 300
        if rng.random() < 0.10:
            limiter.on_rate_limit(1.0)
        else:
            limiter.on_success()
        if step > 1000:
            lowest_late = min(lowest_late, limiter.limit)
    assert limiter.stats["cuts"] <= 5000 / 300 + 1  # at most one per second
    assert lowest_late >= 16


def test_pause_for_retry_after_can_be_left_to_the_request() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(8, default_cooldown_s=0.05, pause_for_retry_after=False, clock=clock)
    limiter.on_rate_limit(30.0)
    clock.now += 0.06
    assert not limiter.cooling_down  # new requests go on; the 429'd one waits itself


def test_rate_limit_halves_once_per_cooldown_window() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, initial=32, default_cooldown_s=1.0, clock=clock)
    limiter.on_rate_limit(None)
    assert limiter.limit == 16 and limiter.cooling_down
    for _ in range(10):  # a burst from requests already in flight
        clock.now += 0.05
        limiter.on_rate_limit(None)
    assert limiter.limit == 16 and limiter.stats["cuts"] == 1
    clock.now += 1.01  # the burst extended the window to its last 429 + 1 s
    assert not limiter.cooling_down
    limiter.on_rate_limit(5.0)  # Retry-After longer than the default
    assert limiter.limit == 8
    clock.now += 4.9
    assert limiter.cooling_down
    limiter.on_rate_limit(None)
    assert limiter.limit == 8
    clock.now += 0.2
    for _ in range(6):
        clock.now += 10
        limiter.on_rate_limit(None)
    assert limiter.limit == 1  # never below one
    assert limiter.stats["cuts"] == 8


def test_success_streak_resets_on_rate_limit() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(64, initial=8, grow_after=2, clock=clock)
    limiter.on_success()
    limiter.on_rate_limit(None)
    limiter.on_success()
    assert limiter.limit == 4
    limiter.on_success()
    assert limiter.limit == 5


def test_acquire_blocks_at_the_limit_until_release() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(4, initial=2)
        await limiter.acquire()
        await limiter.acquire()
        assert limiter.inflight == 2
        third = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.02)
        assert not third.done()
        limiter.release()
        await asyncio.wait_for(third, 1.0)
        assert limiter.inflight == 2
        with pytest.raises(RuntimeError):
            for _ in range(3):
                limiter.release()

    asyncio.run(main())


def test_growth_wakes_waiters() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(4, initial=1, grow_after=1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        limiter.on_success()
        await asyncio.wait_for(waiter, 1.0)
        assert limiter.inflight == 2

    asyncio.run(main())


def test_acquire_waits_out_the_cooldown() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(8, initial=8, default_cooldown_s=0.05)
        limiter.on_rate_limit(None)
        started = time.monotonic()
        await asyncio.wait_for(limiter.acquire(), 1.0)
        assert time.monotonic() - started >= 0.045
        limiter.on_rate_limit(0.1)  # Retry-After beats the default cooldown
        blocked = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.05)
        assert not blocked.done()
        limiter.release()  # a free slot does not end the cooldown
        await asyncio.sleep(0.01)
        assert not blocked.done()
        await asyncio.wait_for(blocked, 1.0)
        assert time.monotonic() - started >= 0.145

    asyncio.run(main())


def test_cancelled_waiters_do_not_leak_slots() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(2, initial=1)
        await limiter.acquire()
        waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
        await asyncio.sleep(0.01)
        for task in waiters[:4]:
            task.cancel()
        limiter.release()
        await asyncio.wait_for(waiters[4], 1.0)
        assert limiter.inflight == 1
        # a slot handed over in the same tick as a cancel goes back to the pool
        late = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        limiter.release()
        late.cancel()
        with pytest.raises(asyncio.CancelledError):
            await late
        assert limiter.inflight == 0

    asyncio.run(main())


def test_two_hundred_tasks_never_exceed_the_limit_or_cap() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(12, initial=3, grow_after=2, default_cooldown_s=0.01)
        rng = random.Random(7)
        peak = 0

        async def request(i: int) -> None:
            nonlocal peak
            async with limiter.slot():
                peak = max(peak, limiter.inflight)
                await asyncio.sleep(rng.uniform(0, 0.004))
                if i % 37 == 0:
                    limiter.on_rate_limit(None)
                else:
                    limiter.on_success()

        await asyncio.wait_for(asyncio.gather(*(request(i) for i in range(200))), 5.0)
        assert 3 <= peak <= 12
        assert limiter.inflight == 0
        assert limiter.stats["cuts"] >= 1 and limiter.stats["grows"] >= 1
        assert limiter.stats["max_limit_seen"] <= 12

    asyncio.run(main())


def test_backoff_is_bounded_by_growing_caps() -> None:
    backoff = Backoff(base_s=0.5, factor=2.0, max_s=4.0, rng=random.Random(1))
    caps = [backoff.cap(a) for a in range(1, 8)]
    assert caps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert backoff.cap(10_000) == 4.0  # no overflow
    for attempt in range(1, 8):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= backoff.cap(attempt) for d in delays)
        assert max(delays) > backoff.cap(attempt) / 2  # full jitter spans the range


def test_backoff_honours_retry_after() -> None:
    backoff = Backoff(base_s=0.5, max_s=2.0, rng=random.Random(2))
    assert all(backoff.delay(1, retry_after_s=3.0) == 3.0 for _ in range(50))
    assert all(backoff.delay(3, retry_after_s=10.0) == 10.0 for _ in range(50))
    assert all(1.0 <= backoff.delay(3, retry_after_s=1.0) <= 2.0 for _ in range(50))


def test_budget_arithmetic() -> None:
    budget = Budget(1.0)
    assert budget.remaining == 1.0 and not budget.reached
    for _ in range(9):
        budget.add(0.1)
    budget.add(None)
    budget.add(float("nan"))
    budget.add(-5.0)
    assert not budget.reached
    assert budget.remaining == pytest.approx(0.1)
    budget.add(0.1)  # ten times $0.10 is exactly the $1.00 threshold
    assert budget.spent == 1.0 and budget.reached and budget.remaining == 0.0
    budget.add(0.5)
    assert budget.spent == pytest.approx(1.5) and budget.remaining == 0.0


def test_budget_unlimited_and_zero() -> None:
    unlimited = Budget(None)
    unlimited.add(1e6)
    assert not unlimited.reached and unlimited.remaining is None and unlimited.spent == 1e6
    assert Budget(0.0).reached
    with pytest.raises(ValueError):
        Budget(-1.0)
