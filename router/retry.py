"""Retries that cannot become a retry storm.

Why: a retry is a second request against an upstream that just said it is struggling.
So: only failures that are safe to repeat (the request never ran, or the upstream said
"not now"), never once a byte of a stream reached the caller, exponential backoff with
full jitter (so clients that failed together do not return together), the upstream's
own Retry-After honoured, everything inside the request's deadline, and a retry budget:
retries may be at most `budget_ratio` of the requests in a sliding window (plus a small
floor so a quiet router can still retry) — Envoy's and Finagle's answer to amplification.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from router.config import RetryConfig
from router.upstreams.base import UpstreamFailure

T = TypeVar("T")


def full_jitter(attempt: int, cfg: RetryConfig, rng: random.Random | None = None) -> float:
    """Backoff before retry number `attempt` (1-based): uniform(0, min(cap, base·2^(n-1)))."""
    ceiling = min(cfg.max_backoff_s, cfg.base_backoff_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


class RetryBudget:
    """Retries ≤ ratio × requests over a sliding window, with a floor (per pool)."""

    def __init__(self, cfg: RetryConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self._clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _prune(self) -> float:
        now = self._clock()
        edge = now - self.cfg.budget_window_s
        for q in (self._requests, self._retries):
            while q and q[0] < edge:
                q.popleft()
        return now

    def record_request(self) -> None:
        """Count an original request (call once per request, not per attempt)."""
        self._requests.append(self._prune())

    def try_spend(self, reserve: float = 0.0) -> bool:
        """Take one retry from the budget; False if it is spent. `reserve`: the share of
        the budget this caller may not use (kept for a higher tier)."""
        now = self._prune()
        allowed = max(self.cfg.budget_min_retries, self.cfg.budget_ratio * len(self._requests))
        if len(self._retries) + 1 > allowed * (1.0 - reserve):
            return False
        self._retries.append(now)
        return True

    def stats(self) -> dict[str, int]:
        self._prune()
        return {"requests": len(self._requests), "retries": len(self._retries)}


def next_delay(
    failure: Exception,
    tries: int,
    cfg: RetryConfig,
    budget: RetryBudget,
    deadline: float,
    reserve: float,
) -> tuple[float | None, str]:
    """The wait before attempt `tries` + 1, or (None, why not). Only a pool's failure that
    it marked safe to repeat is retried; "no upstream available" never is: the handler
    moves on to the next allowed route instead."""
    if not isinstance(failure, UpstreamFailure) or not failure.retryable:
        return None, "not_retryable"
    if failure.kind == "no_upstream_available":
        return None, "not_retryable"
    if tries >= cfg.max_attempts:
        return None, "attempts"
    delay = full_jitter(tries, cfg)
    if failure.retry_after is not None:
        if failure.retry_after > cfg.max_retry_after_s:
            return None, "retry_after_too_long"
        delay = max(delay, failure.retry_after)
    if time.monotonic() + delay >= deadline:
        return None, "deadline"
    if not budget.try_spend(reserve):
        return None, "budget"
    return delay, ""


class RetrySeam:
    """The handler's retry step (router.steps.Retry): one budget per pool.

    The pools raise `UpstreamFailure` before any byte reached the caller (a stream is
    returned only once the upstream said yes), so a failure here never follows a
    streamed byte. "No upstream available" is not retried inside the pool: the handler
    moves on to the next allowed route instead. A failure that was safe to retry but
    found the budget spent answers 503 + Retry-After (as Envoy answers a connect failure):
    the caller may come back, where the upstream's own 502 would say nothing of when.
    """

    def __init__(self, cfg: RetryConfig, metrics: object | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.budgets: dict[str, RetryBudget] = {}

    def reconfigure(self, cfg: RetryConfig) -> None:
        self.cfg = cfg
        for b in self.budgets.values():
            b.cfg = cfg

    def budget(self, route: str) -> RetryBudget:
        if route not in self.budgets:
            self.budgets[route] = RetryBudget(self.cfg)
        return self.budgets[route]

    async def call(self, ctx: Any, route: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """The first attempt runs right here: a request that succeeds at once (nearly all)
        pays for the budget's request count and one metric, not for the retry loop. A
        failure goes on in `_retry`, where `next_delay`'s rules (backoff, budget, deadline,
        Retry-After) decide about every retry. (A streamed answer keeps its admission slot
        until its end: the handler moves the slot's release into the stream.)"""
        budget = self.budget(route)
        budget.record_request()
        try:
            return await self._once(ctx, route, attempt)
        except Exception as first:
            return await self._retry(ctx, route, attempt, budget, first)

    async def _once(self, ctx: Any, route: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """One attempt, counted in ctx.attempts and edgepack_router_upstream_attempts."""
        ctx.attempts += 1
        try:
            reply = await attempt()
        except Exception:
            self._count(route, "failure")
            raise
        self._count(route, "success")
        return reply

    def _count(self, route: str, outcome: str) -> None:
        """edgepack_router_upstream_attempts{pool=route, outcome=success|failure}."""
        m = self.metrics
        if m is not None:
            m.child(m.upstream_attempts, route, outcome).inc()

    async def _retry(
        self,
        ctx: Any,
        route: str,
        attempt: Callable[[], Awaitable[T]],
        budget: RetryBudget,
        failure: Exception,
    ) -> T:
        """After a failed first attempt: retry while `next_delay` allows it, else raise the
        last failure (a safe one that found the budget spent as `_budget_spent`)."""
        reserve = 0.0 if ctx.tier == "high" else self.cfg.budget_high_reserve
        tries = 1
        while True:
            delay, why = next_delay(failure, tries, self.cfg, budget, ctx.deadline, reserve)
            if delay is None:
                if why == "budget":
                    self._inc("retry_budget_exhausted", route)
                    raise _budget_spent(failure) from None
                raise failure
            self._inc("retries", route)
            await asyncio.sleep(delay)
            tries += 1
            try:
                return await self._once(ctx, route, attempt)
            except Exception as exc:  # CancelledError is a BaseException: it passes
                failure = exc

    def _inc(self, metric: str, route: str) -> None:
        m = self.metrics
        if m is not None:
            m.child(getattr(m, metric), route).inc()


def _budget_spent(cause: UpstreamFailure) -> UpstreamFailure:
    """The pool's failure, as the caller gets it when no retry was allowed: 503, retry
    after a second, still retryable (the handler may try the next allowed route)."""
    return UpstreamFailure(
        503, "retry_budget_exhausted", f"{cause.message}; the retry budget is spent",
        retryable=True, retry_after=1.0, upstream=cause.upstream,
    )  # fmt: skip
