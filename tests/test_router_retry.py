"""Retries: full-jitter backoff, the retry budget, what is retryable, Retry-After, deadlines."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from router.config import RetryConfig
from router.context import Api, RequestContext
from router.retry import RetryBudget, RetrySeam, full_jitter
from router.upstreams.base import UpstreamFailure


def test_full_jitter_stays_under_the_exponential_ceiling_and_spreads():
    cfg = RetryConfig(base_backoff_s=0.1, max_backoff_s=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        draws = [full_jitter(attempt, cfg, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling and min(draws) < 0.2 * ceiling


def test_budget_allows_ratio_of_requests_plus_floor_in_window():
    now = [0.0]
    budget = RetryBudget(
        RetryConfig(budget_ratio=0.2, budget_min_retries=2, budget_window_s=10),
        clock=lambda: now[0],
    )
    assert budget.try_spend() and budget.try_spend()  # the floor
    assert not budget.try_spend()
    for _ in range(50):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(100))
    assert spent == 8  # 20% of 50 = 10, two already used
    now[0] = 11.0  # the window slid past everything
    assert budget.stats() == {"requests": 0, "retries": 0}
    assert budget.try_spend()


def _seam(**cfg) -> RetrySeam:
    return RetrySeam(RetryConfig(**{"base_backoff_s": 0.001, "max_backoff_s": 0.002, **cfg}))


def _ctx(deadline_in: float = 10.0) -> RequestContext:
    return RequestContext("id", Api.chat, b"", "application/json", "*/*", {},
                          deadline=time.monotonic() + deadline_in)  # fmt: skip


def _busy(retry_after: float | None = None) -> UpstreamFailure:
    return UpstreamFailure(503, "upstream_busy", "gpu-0: busy", retryable=True,
                           retry_after=retry_after, upstream="gpu-0")  # fmt: skip


def _call(seam: RetrySeam, attempt, ctx: RequestContext | None = None):
    return asyncio.run(seam.call(ctx or _ctx(), "onprem", attempt))


def test_retries_a_safe_failure_then_succeeds():
    calls = []

    async def attempt():
        calls.append(1)
        if len(calls) < 3:
            raise _busy()
        return "ok"

    ctx = _ctx()
    assert _call(_seam(), attempt, ctx) == "ok" and len(calls) == 3 and ctx.attempts == 3


def test_does_not_retry_unsafe_failures_nor_past_max_attempts():
    unsafe = UpstreamFailure(500, "upstream_error", "boom", retryable=False)
    for failure, tries in [(unsafe, 1), (_busy(), 3), (ValueError("a bug"), 1)]:
        calls = []

        async def attempt(failure=failure, calls=calls):
            calls.append(1)
            raise failure

        with pytest.raises(type(failure)) as e:
            _call(_seam(max_attempts=3), attempt)
        assert e.value is failure and len(calls) == tries


def test_honours_upstream_retry_after_and_the_deadline():
    def throttled_once():
        calls = []

        async def attempt():
            calls.append(time.monotonic())
            if len(calls) == 1:
                raise _busy(retry_after=0.3)
            return "ok"

        return attempt, calls

    attempt, calls = throttled_once()
    assert _call(_seam(), attempt) == "ok" and calls[1] - calls[0] >= 0.3
    attempt, calls = throttled_once()  # waiting 0.3 s would pass the deadline
    with pytest.raises(UpstreamFailure):
        _call(_seam(), attempt, _ctx(deadline_in=0.2))
    assert len(calls) == 1
    attempt, calls = throttled_once()  # longer than it may wait
    with pytest.raises(UpstreamFailure):
        _call(_seam(max_retry_after_s=0.2), attempt)
    assert len(calls) == 1


def test_budget_stops_a_retry_storm():
    seam = _seam(max_attempts=5, budget_ratio=0.2, budget_min_retries=1, max_backoff_s=0.001)
    upstream_calls = 0

    async def down():
        nonlocal upstream_calls
        upstream_calls += 1
        raise _busy()

    async def main():
        spent = 0
        for _ in range(100):
            with pytest.raises(UpstreamFailure) as e:
                await seam.call(_ctx(), "onprem", down)
            spent += e.value.kind == "retry_budget_exhausted"
        return spent

    spent = asyncio.run(main())
    assert upstream_calls <= 100 * 1.2 + 1  # amplification bounded by the budget
    assert upstream_calls > 100 and spent > 50


def test_part_of_the_budget_is_kept_for_the_high_tier():
    cfg = RetryConfig(budget_ratio=0.2, budget_min_retries=0, budget_high_reserve=0.5)
    budget = RetryBudget(cfg, clock=lambda: 0.0)
    for _ in range(100):
        budget.record_request()
    low = sum(budget.try_spend(reserve=0.5) for _ in range(50))
    high = sum(budget.try_spend() for _ in range(50))
    assert (low, high) == (10, 10)  # low stops at half of the 20 retries; high gets the rest


def test_a_safe_failure_without_budget_answers_503_retry_after():
    seam = RetrySeam(RetryConfig(budget_ratio=0, budget_min_retries=0))
    calls = []

    async def attempt(failure: UpstreamFailure):
        calls.append(1)
        raise failure

    def run(failure: UpstreamFailure) -> UpstreamFailure:
        ctx = RequestContext("id", Api.chat, b"", "application/json", "*/*", {},
                             deadline=time.monotonic() + 5)  # fmt: skip
        with pytest.raises(UpstreamFailure) as e:
            asyncio.run(seam.call(ctx, "onprem", lambda: attempt(failure)))
        return e.value

    refused = UpstreamFailure(502, "upstream_unreachable", "gpu-0: refused", retryable=True,
                              upstream="gpu-0")  # fmt: skip
    answer = run(refused)
    assert (answer.status, answer.kind, answer.retry_after) == (503, "retry_budget_exhausted", 1)
    assert answer.retryable and answer.upstream == "gpu-0" and len(calls) == 1
    unsafe = UpstreamFailure(502, "upstream_error", "connection lost", retryable=False)
    assert run(unsafe) is unsafe  # not safe to repeat: the pool's own answer
