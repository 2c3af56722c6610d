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
import email.utils
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from router.config import RetryConfig
from router.upstreams.base import UpstreamFailure

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({502, 503, 504})
# SageMaker runtime error codes that mean "the model did not run, try again".
RETRYABLE_SAGEMAKER_CODES = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable",
     "ServiceUnavailableException", "InternalDependencyException"}
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """Whether a failure may be retried, and how long the upstream asked us to wait."""

    retryable: bool
    retry_after: float | None = None
    reason: str = ""


class UpstreamError(Exception):
    """An upstream answered with an error status (what the pools raise for non-2xx)."""

    def __init__(self, status: int, retry_after: float | None = None, body: bytes = b""):
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.retry_after = retry_after
        self.body = body


class RetryAborted(Exception):
    """Retries stopped; `cause` is the last failure and `reason` says why we stopped."""

    def __init__(self, cause: BaseException, reason: str, attempts: int):
        super().__init__(f"{reason} after {attempts} attempt(s): {cause!r}")
        self.cause = cause
        self.reason = reason
        self.attempts = attempts


def full_jitter(attempt: int, cfg: RetryConfig, rng: random.Random | None = None) -> float:
    """Backoff before retry number `attempt` (1-based): uniform(0, min(cap, base·2^(n-1)))."""
    ceiling = min(cfg.max_backoff_s, cfg.base_backoff_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def classify(exc: BaseException) -> Verdict:
    """Is this failure safe to retry? Connect errors, 502/503/504 and SageMaker's
    throttling / not-ready / ModelError-with-503 are; timeouts and 4xx are not."""
    if isinstance(exc, UpstreamError):
        ok = exc.status in RETRYABLE_STATUS or exc.status == 429
        return Verdict(ok, exc.retry_after, f"status {exc.status}")
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("httpx"):
        # the request never reached the upstream: safe to send again
        ok = name in {"ConnectError", "ConnectTimeout", "PoolTimeout"}
        return Verdict(ok, None, name)
    if module.startswith("botocore"):
        return _classify_botocore(exc)
    if isinstance(exc, ConnectionRefusedError | ConnectionResetError):
        return Verdict(True, None, name)
    return Verdict(False, None, name)


def _classify_botocore(exc: BaseException) -> Verdict:
    name = type(exc).__name__
    if name in {"EndpointConnectionError", "ConnectTimeoutError"}:
        return Verdict(True, None, name)
    response = getattr(exc, "response", None) or {}
    err = response.get("Error", {})
    code = str(err.get("Code", ""))
    meta = response.get("ResponseMetadata", {})
    retry_after = parse_retry_after((meta.get("HTTPHeaders") or {}).get("retry-after"))
    if code in RETRYABLE_SAGEMAKER_CODES:
        return Verdict(True, retry_after, code)
    if code == "ModelError":
        inner = response.get("OriginalStatusCode")
        return Verdict(inner in RETRYABLE_STATUS, retry_after, f"ModelError {inner}")
    status = meta.get("HTTPStatusCode")
    return Verdict(status in RETRYABLE_STATUS, retry_after, code or name)


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


async def call_with_retries(
    attempt_fn: Callable[[int], Awaitable[T]],
    *,
    cfg: RetryConfig,
    budget: RetryBudget,
    deadline: float,
    committed: Callable[[], bool] = lambda: False,
    budget_reserve: float = 0.0,
    classify_fn: Callable[[BaseException], Verdict] = classify,
    on_retry: Callable[[int, BaseException], None] | None = None,
    on_budget_exhausted: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    first_failure: Exception | None = None,
) -> T:
    """Run `attempt_fn(attempt)` (attempt counts from 0) until it succeeds or must stop.

    `committed()` says whether a byte already reached the caller (then never retry).
    `first_failure`: the caller already made attempt 0 (and counted the request in the
    budget), and this is how it failed; the loop goes on from there.
    Raises RetryAborted with the last failure once retrying is not allowed.
    """
    if first_failure is None:
        budget.record_request()
    failure = first_failure
    attempt = 0
    while True:
        if failure is None:
            try:
                return await attempt_fn(attempt)
            except Exception as exc:  # CancelledError is a BaseException: it passes
                failure = exc
        delay, why = _next_delay(failure, attempt, cfg, budget, deadline, committed,
                                 classify_fn, clock, rng, budget_reserve)  # fmt: skip
        if delay is None:
            if why == "budget" and on_budget_exhausted is not None:
                on_budget_exhausted()
            raise RetryAborted(failure, why, attempt + 1) from failure
        attempt += 1
        if on_retry is not None:
            on_retry(attempt, failure)
        failure = None
        await sleep(delay)


def _next_delay(
    exc: BaseException,
    attempt: int,
    cfg: RetryConfig,
    budget: RetryBudget,
    deadline: float,
    committed: Callable[[], bool],
    classify_fn: Callable[[BaseException], Verdict],
    clock: Callable[[], float],
    rng: random.Random | None,
    reserve: float = 0.0,
) -> tuple[float | None, str]:
    """The wait before the next attempt, or (None, why-not)."""
    if committed():
        return None, "stream_started"
    verdict = classify_fn(exc)
    if not verdict.retryable:
        return None, "not_retryable"
    if attempt + 1 >= cfg.max_attempts:
        return None, "attempts"
    delay = full_jitter(attempt + 1, cfg, rng)
    if verdict.retry_after is not None:
        if verdict.retry_after > cfg.max_retry_after_s:
            return None, "retry_after_too_long"
        delay = max(delay, verdict.retry_after)
    if clock() + delay >= deadline:
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
        failure goes on in `call_with_retries`, whose rules (backoff, budget, deadline,
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
        first: Exception,
    ) -> T:
        """After a failed first attempt: retry while `call_with_retries` allows it, or raise
        the last failure."""
        m = self.metrics

        def retried(n: int, exc: BaseException) -> None:
            if m is not None:
                m.child(m.retries, route).inc()

        def exhausted() -> None:
            if m is not None:
                m.child(m.retry_budget_exhausted, route).inc()

        try:
            return await call_with_retries(
                lambda n: self._once(ctx, route, attempt), cfg=self.cfg, budget=budget,
                deadline=ctx.deadline, first_failure=first,
                budget_reserve=0.0 if ctx.tier == "high" else self.cfg.budget_high_reserve,
                classify_fn=classify_failure, on_retry=retried, on_budget_exhausted=exhausted,
            )  # fmt: skip
        except RetryAborted as stop:
            if stop.reason == "budget" and getattr(stop.cause, "retryable", False):
                raise _budget_spent(stop.cause) from None
            raise stop.cause from None


def _budget_spent(cause: Any) -> Exception:
    """The pool's failure, as the caller gets it when no retry was allowed: 503, retry
    after a second, still retryable (the handler may try the next allowed route)."""
    return UpstreamFailure(
        503, "retry_budget_exhausted", f"{cause.message}; the retry budget is spent",
        retryable=True, retry_after=1.0, upstream=cause.upstream,
    )  # fmt: skip


def classify_failure(exc: BaseException) -> Verdict:
    """Verdict for the pools' `UpstreamFailure` (their `retryable` flag and Retry-After)."""
    if hasattr(exc, "retryable") and hasattr(exc, "kind"):
        if exc.kind == "no_upstream_available":
            return Verdict(False, None, exc.kind)
        return Verdict(bool(exc.retryable), exc.retry_after, exc.kind)
    return classify(exc)
