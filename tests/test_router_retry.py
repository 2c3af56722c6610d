"""Retries: full-jitter backoff, the retry budget, what is retryable, Retry-After, deadlines."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time

import botocore.exceptions
import httpx
import pytest

from router.context import Api, RequestContext
from router.retry import (
    RetryAborted,
    RetryBudget,
    RetryConfig,
    RetrySeam,
    UpstreamError,
    call_with_retries,
    classify,
    full_jitter,
    parse_retry_after,
)


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


def test_classify_safe_and_unsafe_failures():
    req = httpx.Request("POST", "http://127.0.0.1:1/")
    assert classify(httpx.ConnectError("refused", request=req)).retryable
    assert not classify(httpx.ReadTimeout("slow", request=req)).retryable
    assert classify(UpstreamError(503, retry_after=2.0)).retry_after == 2.0
    assert classify(UpstreamError(502)).retryable
    assert not classify(UpstreamError(500)).retryable
    assert not classify(UpstreamError(400)).retryable
    assert not classify(ValueError("bug")).retryable

    def client_error(code, original=None, status=400, retry_after=None):
        headers = {"retry-after": retry_after} if retry_after else {}
        resp = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        }
        if original is not None:
            resp["OriginalStatusCode"] = original
        return botocore.exceptions.ClientError(resp, "InvokeEndpoint")

    assert (
        classify(client_error("ThrottlingException", status=400, retry_after="3")).retry_after == 3
    )
    assert classify(client_error("ModelNotReadyException", status=429)).retryable
    assert classify(client_error("ModelError", original=503, status=424)).retryable
    assert not classify(client_error("ModelError", original=500, status=424)).retryable
    assert not classify(client_error("ValidationError")).retryable
    assert classify(botocore.exceptions.EndpointConnectionError(endpoint_url="x")).retryable


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 18 <= parse_retry_after(when) <= 20
    assert parse_retry_after(email.utils.formatdate(0, usegmt=True)) == 0.0


def _run(fn, cfg=None, budget=None, deadline_in=10.0, **kw):
    cfg = cfg or RetryConfig(base_backoff_s=0.001, max_backoff_s=0.002)
    budget = budget or RetryBudget(cfg)
    sleeps: list[float] = []

    async def fake_sleep(s):
        sleeps.append(s)

    coro = call_with_retries(fn, cfg=cfg, budget=budget, deadline=time.monotonic() + deadline_in,
                             sleep=fake_sleep, **kw)  # fmt: skip
    return asyncio.run(coro), sleeps


def test_retries_a_safe_failure_then_succeeds():
    calls = []

    async def fn(attempt):
        calls.append(attempt)
        if attempt < 2:
            raise UpstreamError(503)
        return "ok"

    result, sleeps = _run(fn)
    assert result == "ok" and calls == [0, 1, 2] and len(sleeps) == 2


def test_does_not_retry_unsafe_failures_or_after_a_streamed_byte():
    async def fails(attempt):
        raise UpstreamError(500)

    with pytest.raises(RetryAborted) as e:
        _run(fails)
    assert e.value.reason == "not_retryable" and e.value.attempts == 1

    async def busy(attempt):
        raise UpstreamError(503)

    with pytest.raises(RetryAborted) as e:
        _run(busy, committed=lambda: True)
    assert e.value.reason == "stream_started" and e.value.attempts == 1


def test_honours_upstream_retry_after_and_the_deadline():
    async def throttled(attempt):
        if attempt == 0:
            raise UpstreamError(503, retry_after=0.5)
        return "ok"

    result, sleeps = _run(throttled)
    assert result == "ok" and sleeps == [0.5]
    with pytest.raises(RetryAborted) as e:  # waiting 0.5 s would pass the deadline
        _run(throttled, deadline_in=0.3)
    assert e.value.reason == "deadline"
    cfg = RetryConfig(max_retry_after_s=0.2)
    with pytest.raises(RetryAborted) as e:
        _run(throttled, cfg=cfg)
    assert e.value.reason == "retry_after_too_long"


def test_budget_stops_a_retry_storm():
    cfg = RetryConfig(max_attempts=5, budget_ratio=0.2, budget_min_retries=1,
                      base_backoff_s=0.001, max_backoff_s=0.001)  # fmt: skip
    budget = RetryBudget(cfg)
    upstream_calls = 0
    exhausted = []

    async def down(attempt):
        nonlocal upstream_calls
        upstream_calls += 1
        raise UpstreamError(503)

    async def main():
        for _ in range(100):
            with pytest.raises(RetryAborted):
                await call_with_retries(
                    down, cfg=cfg, budget=budget, deadline=time.monotonic() + 5,
                    on_budget_exhausted=lambda: exhausted.append(1),
                )  # fmt: skip

    asyncio.run(main())
    assert upstream_calls <= 100 * 1.2 + 1  # amplification bounded by the budget
    assert upstream_calls > 100 and len(exhausted) > 50


def test_part_of_the_budget_is_kept_for_the_high_tier():
    cfg = RetryConfig(budget_ratio=0.2, budget_min_retries=0, budget_high_reserve=0.5)
    budget = RetryBudget(cfg, clock=lambda: 0.0)
    for _ in range(100):
        budget.record_request()
    low = sum(budget.try_spend(reserve=0.5) for _ in range(50))
    high = sum(budget.try_spend() for _ in range(50))
    assert (low, high) == (10, 10)  # low stops at half of the 20 retries; high gets the rest


def test_a_safe_failure_without_budget_answers_503_retry_after():
    from router.upstreams.base import UpstreamFailure

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
