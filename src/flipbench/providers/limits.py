"""Adaptive concurrency, retry backoff and a cost budget for many identical API calls.

A fixed batch size with a fixed sleep (what peer tools do) is either far below what the API
allows or too much for it; an AIMD limit finds the level the provider tolerates and backs off
the moment it pushes back, while a budget stops a run before it overspends.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field


class AdaptiveLimiter:
    """AIMD concurrency limit: +1 after every `grow_after` consecutive successes, halve on a rate
    limit, never below 1 nor above `cap`; after a rate limit no new request starts before the
    cooldown ends (Retry-After when `pause_for_retry_after`, at least `default_cooldown_s`).

    The limit halves at most once per cut window (`cut_window_s`, stretched to Retry-After): the
    429s of requests already in flight when the first arrived say nothing new, and a provider
    that rejects a share of requests at random must not pin the limit near 1 (TCP, likewise,
    cuts once per round trip, not once per lost packet). Until the first rate limit it grows by
    one per success (TCP's slow start: the limit doubles every round trip), so a run against a
    provider that never pushes back reaches the cap within a few round trips.

    Waiters queue FIFO on futures (as asyncio.Semaphore does) rather than on an asyncio.Condition:
    `release`, `on_success` and `on_rate_limit` are synchronous, and Condition.notify needs its
    lock held, which synchronous code cannot take. Slots are handed to waiters directly, so a
    newcomer cannot overtake the queue and each release wakes one task, not hundreds.
    """

    def __init__(
        self,
        cap: int,
        *,
        initial: int | None = None,
        grow_after: int = 4,
        default_cooldown_s: float = 1.0,
        cut_window_s: float | None = None,
        pause_for_retry_after: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap < 1 or grow_after < 1:
            raise ValueError("cap and grow_after must be at least 1")
        self.cap = cap
        self._limit = max(1, min(cap, 16 if initial is None else initial))
        self.grow_after = grow_after
        self.default_cooldown_s = default_cooldown_s
        self.cut_window_s = default_cooldown_s if cut_window_s is None else cut_window_s
        self.pause_for_retry_after = pause_for_retry_after
        self._no_cut_until = -math.inf
        self._slow_start = True
        self._clock = clock
        self._inflight = 0
        self._successes = 0
        self._cooldown_until = -math.inf
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.stats: dict[str, int] = {"cuts": 0, "grows": 0, "max_limit_seen": self._limit}

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def cooling_down(self) -> bool:
        return self._clock() < self._cooldown_until

    async def acquire(self) -> None:
        """Wait for a free slot outside any cooldown; FIFO among waiters."""
        if not self._waiters and not self.cooling_down and self._inflight < self._limit:
            self._inflight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # a slot was handed over just as we were cancelled
            raise

    def release(self) -> None:
        if self._inflight <= 0:
            raise RuntimeError("release() without a matching acquire()")
        self._inflight -= 1
        self._wake()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def slot(self) -> AbstractAsyncContextManager[None]:
        """`async with limiter.slot():` around one request."""
        return self._slot()

    def on_success(self) -> None:
        self._successes += 1
        if self._slow_start or self._successes >= self.grow_after:
            self._successes = 0
            if self._limit < self.cap:
                self._limit += 1
                self.stats["grows"] += 1
                self.stats["max_limit_seen"] = max(self.stats["max_limit_seen"], self._limit)
                self._wake()

    def on_rate_limit(self, retry_after_s: float | None) -> None:
        """Halve (once per cut window) and pause new starts for the cooldown."""
        now = self._clock()
        server_wait = retry_after_s or 0.0
        self._slow_start = False
        if now >= self._no_cut_until:
            self._limit = max(1, self._limit // 2)
            self.stats["cuts"] += 1
            self._no_cut_until = now + max(server_wait, self.cut_window_s)
        self._successes = 0
        pause = server_wait if self.pause_for_retry_after else 0.0
        cooldown = max(pause, self.default_cooldown_s)
        self._cooldown_until = max(self._cooldown_until, now + cooldown)

    def _wake(self) -> None:
        """Hand free slots to queued waiters, or arm a timer for the end of the cooldown."""
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()  # cancelled while waiting
        if not self._waiters:
            return
        remaining = self._cooldown_until - self._clock()
        if remaining > 0:
            if self._timer is None:
                loop = self._waiters[0].get_loop()
                self._timer = loop.call_later(max(remaining, 0.001), self._on_timer)
            return
        while self._waiters and self._inflight < self._limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self._inflight += 1
                fut.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()


@dataclass
class Backoff:
    """Full-jitter exponential backoff: spreads retries so they do not return in lockstep."""

    base_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def cap(self, attempt: int) -> float:
        """Upper bound of the delay before retry number `attempt` (1, 2, …)."""
        try:
            grown = self.base_s * self.factor ** (max(1, attempt) - 1)
        except OverflowError:
            return self.max_s
        return min(self.max_s, grown)

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        wait = self.rng.uniform(0.0, self.cap(attempt))
        if retry_after_s is not None and retry_after_s > wait:
            wait = retry_after_s  # the server's word beats our guess
        return wait


class Budget:
    """What a run has spent against its cap (None = unlimited), in USD.

    The spend belongs to the run, not to the process: it starts from what the journal already
    holds (`already_spent`), so a resume continues the same budget. Compensated (Neumaier)
    summation, so ten calls of $0.10 reach a $1.00 budget exactly.

    A reported cost that cannot be used as is is counted conservatively: a negative one as 0,
    an infinite, NaN or unreadable one as the largest cost per call seen so far (or the
    caller's estimate of the call, whichever is larger), and each is counted in `flagged`.
    """

    def __init__(self, max_cost_usd: float | None, already_spent: float = 0.0) -> None:
        if max_cost_usd is not None and max_cost_usd < 0:
            raise ValueError("max_cost_usd must not be negative")
        self.max_cost_usd = max_cost_usd
        self._sum = 0.0
        self._carry = 0.0
        self.largest = 0.0
        self.flagged = 0
        self.add(already_spent if math.isfinite(already_spent) else math.inf)

    def count(self, cost: float | None, flag: str | None = None, estimate: float = 0.0) -> float:
        """Add one call's cost as the budget counts it, and return that amount."""
        if flag in ("non_finite", "unreadable"):
            self.flagged += 1
            counted = max(self.largest, estimate)
        elif flag == "negative":
            self.flagged += 1
            counted = 0.0
        else:
            counted = cost if cost is not None and math.isfinite(cost) and cost > 0 else 0.0
            self.largest = max(self.largest, counted)
        self.add(counted)
        return counted

    def add(self, cost: float | None) -> None:
        """Ignore missing, NaN or negative costs rather than corrupt the total; +inf saturates."""
        if cost is None or math.isnan(cost) or cost < 0:
            return
        total = self._sum + cost
        if not math.isfinite(total):
            self._sum, self._carry = math.inf, 0.0
            return
        if abs(self._sum) >= abs(cost):
            self._carry += (self._sum - total) + cost
        else:
            self._carry += (cost - total) + self._sum
        self._sum = total

    @property
    def spent(self) -> float:
        return self._sum + self._carry if math.isfinite(self._sum) else math.inf

    @property
    def reached(self) -> bool:
        return self.max_cost_usd is not None and self.spent >= self.max_cost_usd

    @property
    def remaining(self) -> float | None:
        return None if self.max_cost_usd is None else max(0.0, self.max_cost_usd - self.spent)
