"""Admission control: reserved capacity, tier order, bounded queues, 429 vs 503, Retry-After."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from router.admission import (
    AdmissionConfig,
    AdmissionController,
    DrainRate,
    Shed,
    request_deadline,
    resolve_tier,
)
from router.metrics import RouterMetrics


def _cfg(**kw) -> AdmissionConfig:
    base = dict(
        reserved={"high": 0.4, "normal": 0.2, "low": 0.0},
        queue_size={"high": 4, "normal": 2, "low": 1},
        max_queue_wait_s={"high": 2.0, "normal": 2.0, "low": 0.2},
    )
    base.update(kw)
    return AdmissionConfig(**base)


def test_caps_follow_reservations():
    ctl = AdmissionController("onprem", 10, _cfg())
    assert (ctl.cap("high"), ctl.cap("normal"), ctl.cap("low")) == (10, 6, 4)


def test_low_tier_never_takes_reserved_slots():
    async def main():
        ctl = AdmissionController("onprem", 10, _cfg())
        lows = [ctl.try_acquire("low") for _ in range(10)]
        assert sum(s is not None for s in lows) == 4
        highs = [ctl.try_acquire("high") for _ in range(6)]
        assert all(s is not None for s in highs)  # the reserve is still there for high
        assert ctl.try_acquire("high") is None

    asyncio.run(main())


def test_over_share_is_429_and_saturated_is_503():
    async def main():
        m = RouterMetrics()
        ctl = AdmissionController("onprem", 10, _cfg(), metrics=m)
        for _ in range(4):
            assert ctl.try_acquire("low")
        waiter = asyncio.create_task(ctl.acquire("low", time.monotonic() + 5))
        await asyncio.sleep(0)
        with pytest.raises(Shed) as e:  # low's queue (1) is full, pool has free slots
            await ctl.acquire("low", time.monotonic() + 5)
        assert e.value.status == 429 and e.value.retry_after >= 1
        for _ in range(6):
            assert ctl.try_acquire("high")
        with pytest.raises(Shed) as e:  # every slot taken now
            await ctl.acquire("low", time.monotonic() + 5)
        assert e.value.status == 503 and e.value.reason == "queue_full"
        waiter.cancel()
        shed = m.shed.labels(pool="onprem", tier="low", reason="queue_full")._value.get()
        assert shed == 2

    asyncio.run(main())


def test_released_slot_goes_to_highest_tier_first():
    async def main():
        ctl = AdmissionController("p", 2, _cfg(reserved={"high": 0.0, "normal": 0.0}))
        a, b = ctl.try_acquire("normal"), ctl.try_acquire("normal")
        order: list[str] = []

        async def want(tier):
            slot = await ctl.acquire(tier, time.monotonic() + 5)
            order.append(tier)
            return slot

        low = asyncio.create_task(want("low"))
        await asyncio.sleep(0)
        high = asyncio.create_task(want("high"))
        await asyncio.sleep(0)
        a.release()
        await asyncio.sleep(0.01)
        assert order == ["high"]
        b.release()
        await asyncio.sleep(0.01)
        assert order == ["high", "low"]
        (await high).release()
        (await low).release()
        assert ctl.in_use == 0

    asyncio.run(main())


def test_queue_wait_is_bounded_by_deadline_and_frees_nothing_twice():
    async def main():
        ctl = AdmissionController("p", 1, _cfg(reserved={"high": 0.0, "normal": 0.0}))
        held = ctl.try_acquire("normal")
        t0 = time.monotonic()
        with pytest.raises(Shed) as e:
            await ctl.acquire("normal", time.monotonic() + 0.1)
        assert time.monotonic() - t0 >= 0.09  # waited for its deadline, then gave up
        assert e.value.status == 503 and e.value.reason == "queue_timeout"
        assert ctl.queued() == 0
        held.release()
        held.release()  # idempotent
        assert ctl.in_use == 0

    asyncio.run(main())


def test_cancelled_waiter_leaves_queue_and_slot_is_not_leaked():
    async def main():
        ctl = AdmissionController("p", 1, _cfg(reserved={"high": 0.0, "normal": 0.0}))
        held = ctl.try_acquire("high")
        task = asyncio.create_task(ctl.acquire("high", time.monotonic() + 5))
        await asyncio.sleep(0)
        held.release()  # grants the slot to the waiter ...
        task.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ctl.in_use == 0 and ctl.queued() == 0

    asyncio.run(main())


def test_retry_after_follows_observed_drain_rate():
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    cfg = _cfg(reserved={"high": 0.0, "normal": 0.0}, retry_after_max_s=60)
    ctl = AdmissionController("p", 4, cfg, clock=clock)
    slots = [ctl.try_acquire("normal") for _ in range(4)]
    assert ctl.retry_after("normal") == 60  # nothing drained yet and the pool is busy
    now[0] = 10.0
    for s in slots:  # 4 completions in 10 s → 0.4/s
        s.release()
    assert ctl.retry_after("normal") == 3  # ceil(1 / 0.4)
    fast = AdmissionController("p", 4, cfg, clock=clock)
    for _ in range(40):  # 40 completions in the window → 4/s
        fast.try_acquire("normal").release()
    assert fast.retry_after("normal") == 1


def test_drain_rate_window_forgets_old_completions():
    now = [0.0]
    rate = DrainRate(5.0, clock=lambda: now[0])
    now[0] = 5.0
    for _ in range(10):
        rate.record()
    assert rate.rate() == pytest.approx(2.0)
    now[0] = 20.0
    assert rate.rate() == 0.0


def test_tier_and_deadline_from_headers():
    cfg = _cfg(callers={"batch-job": "low"})
    assert resolve_tier({"x-priority": "HIGH"}, cfg) == "high"
    assert resolve_tier({"x-priority": "urgent"}, cfg) == "normal"
    assert resolve_tier({"x-caller": "batch-job", "x-priority": "high"}, cfg) == "low"
    assert request_deadline({}, cfg, 100.0, 130.0) == 130.0
    assert request_deadline({"x-deadline-ms": "1500"}, cfg, 100.0, 130.0) == 101.5
    assert request_deadline({"x-deadline-ms": "9999999"}, cfg, 0.0, 120.0) == 120.0
    assert request_deadline({"x-deadline-ms": "soon"}, cfg, 0.0, 30.0) == 30.0


def test_config_rejects_reserving_everything():
    with pytest.raises(ValidationError, match="less than 1"):
        AdmissionConfig(reserved={"high": 0.7, "normal": 0.3})


def test_drain_rate_window_stays_bounded_without_reads():
    """Completions older than the window are dropped as new ones arrive, not only when the
    rate is read (a router that never sheds and is never probed must not grow forever)."""
    from router.admission import DrainRate

    now = [0.0]
    rate = DrainRate(10.0, clock=lambda: now[0])
    for _ in range(10_000):
        now[0] += 0.01  # 100 completions per second for 100 s
        rate.record()
    assert len(rate._done) <= 1001
    assert abs(rate.rate() - 100.0) < 1.0
