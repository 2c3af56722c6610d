"""Outlier ejection: consecutive failures, error rate, growing ejections, half-open probes."""

from __future__ import annotations

from prometheus_client import generate_latest

from router.breaker import Breaker, BreakerConfig, BreakerSet, State
from router.metrics import RouterMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock, **kw):
    cfg = BreakerConfig(**{"consecutive_failures": 3, "base_ejection_s": 10, **kw})
    return Breaker(cfg, "onprem/a", clock=clock)


def test_consecutive_failures_eject_and_success_resets_the_count():
    clock = Clock()
    b = _breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is State.CLOSED and b.allow()
    b.record_failure()
    assert b.state is State.OPEN and not b.allow() and not b.available()


def test_error_rate_ejects_with_enough_requests():
    clock = Clock()
    b = _breaker(clock, consecutive_failures=100, error_rate=0.5, min_requests=10)
    for _ in range(5):
        b.record_success()
        b.record_failure()
        clock.now += 0.1
    assert b.state is State.OPEN


def test_error_rate_ignores_too_few_requests_and_old_outcomes():
    clock = Clock()
    b = _breaker(clock, consecutive_failures=100, error_rate=0.5, min_requests=10, window_s=5)
    for _ in range(4):
        b.record_failure()
        b.record_success()
    assert b.state is State.CLOSED  # 8 < min_requests
    clock.now = 100.0  # those fell out of the window
    for _ in range(5):
        b.record_success()
    b.record_failure()
    assert b.state is State.CLOSED


def test_half_open_probe_closes_or_reopens_with_longer_ejection():
    clock = Clock()
    b = _breaker(clock, half_open_probes=1)
    for _ in range(3):
        b.record_failure()
    assert b.open_until == 10
    clock.now = 10.0
    assert b.available() and b.state is State.HALF_OPEN
    assert b.allow()  # the one probe
    assert not b.allow()  # no second probe at the same time
    b.record_failure()  # probe failed → ejected again, twice as long
    assert b.state is State.OPEN and b.open_until == 10 + 20
    clock.now = 30.0
    assert b.allow()
    b.record_success()
    assert b.state is State.CLOSED and b.allow() and b.allow()


def test_ejection_time_is_capped_and_forgotten_after_long_health():
    clock = Clock()
    b = _breaker(clock, max_ejection_s=25, forget_after_s=100)
    for n in range(4):
        for _ in range(3):
            b.record_failure()
        assert b.open_until - clock.now == min(10 * (n + 1), 25)
        clock.now = b.open_until
        b.allow()
        b.record_success()
    clock.now += 1000
    for _ in range(3):
        b.record_failure()
    assert b.open_until - clock.now == 10


def test_breaker_set_mirrors_state_into_metrics():
    clock = Clock()
    m = RouterMetrics()
    breakers = BreakerSet(BreakerConfig(consecutive_failures=1, base_ejection_s=5), m, clock)
    b = breakers.get("onprem", "gpu-1")
    breakers.get("onprem", "gpu-2")
    b.record_failure()
    text = generate_latest(m.registry).decode()
    assert 'edgepack_router_breaker_open{pool="onprem",upstream="gpu-1"} 1.0' in text
    assert 'edgepack_router_breaker_open{pool="onprem",upstream="gpu-2"} 0.0' in text
    assert 'edgepack_router_breaker_ejections_total{pool="onprem",upstream="gpu-1"} 1.0' in text
    snap = breakers.snapshot()
    assert snap["onprem/gpu-1"]["state"] == "open" and snap["onprem/gpu-2"]["state"] == "closed"
    clock.now = 5.0
    assert breakers.snapshot()["onprem/gpu-1"]["state"] == "half_open"
    text = generate_latest(m.registry).decode()
    assert 'edgepack_router_breaker_open{pool="onprem",upstream="gpu-1"} 0.0' in text


def test_breaker_set_counts_picks_as_half_open_probes():
    clock = Clock()
    breakers = BreakerSet(BreakerConfig(consecutive_failures=1, base_ejection_s=5), None, clock)
    breakers.record("onprem", "a", False)
    assert not breakers.allow("onprem", "a")
    clock.now = 5.0
    assert breakers.allow("onprem", "a") and breakers.allow("onprem", "a")  # asking is free
    breakers.picked("onprem", "a")  # the one probe is out ...
    assert not breakers.allow("onprem", "a")  # ... so nothing else goes there meanwhile
    breakers.record("onprem", "a", True)
    assert breakers.allow("onprem", "a") and breakers.snapshot()["onprem/a"]["state"] == "closed"
