"""Chaos: an on-prem upstream killed mid-run, SageMaker throttling half its calls, a slow
upstream. No request is lost or hangs, retries stay inside the budget (counted at the
upstreams), and no confidential request reaches the SageMaker test server."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import httpx
import pytest

from tests.fixtures.router_env import RouterEnv, chat

pytestmark = pytest.mark.slow  # end-to-end: real router, test upstreams, load

N = 150
CONCURRENCY = 12
SECRET = "the quarterly merger memo"  # only ever sent with the confidential header
BUDGET = {"budget_ratio": 0.2, "budget_min_retries": 3, "budget_window_s": 60}


async def _drive(env: RouterEnv, kill_at: int) -> list[tuple[str, int]]:
    rng = random.Random(5)
    out: list[tuple[str, int]] = []
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=env.router.url, timeout=30) as client:

        async def one(i: int) -> None:
            confidential = rng.random() < 0.5
            if i == kill_at:  # kill gpu-0 while requests are in flight
                await asyncio.to_thread(env.servers[0].stop)
            async with sem:
                if confidential:
                    body = chat(f"{SECRET} #{i}")
                    headers = {"X-Data-Classification": "confidential", "X-Deadline-Ms": "8000"}
                else:
                    body, headers = chat(f"weather question #{i}"), {"X-Deadline-Ms": "8000"}
                r = await client.post("/v1/chat/completions", json=body, headers=headers)
                out.append(("confidential" if confidential else "public", r.status_code))
                if r.status_code == 200:
                    assert r.headers["x-route"] in ("onprem", "sagemaker", "fallback")

        await asyncio.gather(*(one(i) for i in range(N)))
    return out


def _taken_out(env: RouterEnv, upstream: str, within_s: float = 5.0) -> bool:
    """Whether the router takes `upstream` out (health gauge 0 as a scrape reads it, or its
    breaker not closed) within `within_s`. Health checks run every 0.2 s on the router's
    event loop, which shares this process with the test's clients and servers: under load
    no round may fall between the kill and the end of the run, so that end is no deadline."""
    end = time.monotonic() + within_s
    while True:
        healthy = env.metrics.registry.get_sample_value(
            "edgepack_router_upstream_healthy", {"pool": "onprem", "upstream": upstream}
        )
        state = env.app_state.steps.outlier.snapshot().get(f"onprem/{upstream}", {})
        if healthy == 0 or state.get("state", "closed") != "closed":
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


def test_no_request_lost_retries_in_budget_nothing_confidential_in_the_cloud(tmp_path):
    overrides = {
        "retry": {
            "max_attempts": 3,
            "base_backoff_s": 0.01,
            "max_backoff_s": 0.05,
            "max_retry_after_s": 1.0,
            **BUDGET,
        },
        "breaker": {"consecutive_failures": 2, "base_ejection_s": 1.0},
    }
    with RouterEnv.start(tmp_path, n_onprem=3, overrides=overrides, latency_s=0.02) as env:
        env.onprem[2].latency_s = 0.4  # the slow upstream
        env.sagemaker.throttle_rate = 0.5
        results = asyncio.run(_drive(env, kill_at=N // 3))
        m = env.metrics
        retries = {p: m.retries.labels(p)._value.get() for p in ("onprem", "sagemaker")}
        attempts = {
            p: sum(m.upstream_attempts.labels(p, o).value for o in ("success", "failure"))
            for p in ("onprem", "sagemaker")
        }
        sm_calls = env.sagemaker.requests
        sm_bodies = list(env.sagemaker.bodies)
        onprem_calls = sum(f.requests for f in env.onprem)
        gpu0_out = _taken_out(env, "gpu-0")
        breaker = env.app_state.steps.outlier.snapshot()

    assert len(results) == N  # nothing lost
    statuses = Counter(s for _, s in results)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses[200] >= 0.9 * N, statuses
    # no confidential request at the SageMaker test server
    assert not any(SECRET.encode() in b for b in sm_bodies)
    # retries within budget, counted at the upstreams: the router's count of attempts is
    # what the test servers saw (the killed one refused some connections: ≥ on-prem) ...
    assert attempts["sagemaker"] == sm_calls
    assert attempts["onprem"] >= onprem_calls
    # ... and retries stayed within 20% of the first attempts (plus the floor) per pool
    for pool in ("onprem", "sagemaker"):
        firsts = attempts[pool] - retries[pool]
        assert retries[pool] <= BUDGET["budget_ratio"] * firsts + BUDGET["budget_min_retries"]
    assert retries["sagemaker"] > 0  # throttling did trigger retries
    # the killed upstream was taken out (health check or breaker), the others were not
    assert gpu0_out
    assert breaker["onprem/gpu-1"]["state"] == "closed"


def test_fallback_keeps_the_sensitivity_class(tmp_path):
    from router.testing.openai_server import FakeOpenAI
    from router.testing.serve import ServerThread

    small_conf, small_pub = FakeOpenAI(name="small-conf"), FakeOpenAI(name="small-pub")
    with ServerThread(small_conf) as conf_srv, ServerThread(small_pub) as pub_srv:
        overrides = {
            "fallback": {
                "confidential": {"upstreams": [{"name": "small-conf", "url": conf_srv.url}]},
                "public": {"upstreams": [{"name": "small-pub", "url": pub_srv.url}]},
            },
            "admission": {"pool_limits": {"onprem": 1}, "spill_wait_s": 0.05},
            "retry": {"max_attempts": 1},
        }
        with RouterEnv.start(tmp_path, n_onprem=1, overrides=overrides) as env:
            secret = {"X-Data-Classification": "confidential"}
            ok = env.client.post("/v1/chat/completions", json=chat(SECRET), headers=secret)
            assert ok.headers["x-route"] == "onprem"

            # saturated: the one on-prem slot is held by a slow request → fallback, on-prem
            env.onprem[0].latency_s = 1.0

            async def two():
                async with httpx.AsyncClient(base_url=env.router.url, timeout=30) as client:
                    slow = asyncio.create_task(
                        client.post("/v1/chat/completions", json=chat(SECRET), headers=secret)
                    )
                    await asyncio.sleep(0.3)
                    fast = await client.post(
                        "/v1/chat/completions", json=chat(SECRET), headers=secret
                    )
                    return await slow, fast

            slow, fast = asyncio.run(two())
            assert slow.headers["x-route"] == "onprem"
            assert fast.status_code == 200 and fast.headers["x-route"] == "fallback"
            assert b"small-conf" in fast.content and small_conf.requests == 1

            # broken: SageMaker throttles everything, on-prem answers 503 → public fallback
            env.onprem[0].latency_s = 0.0
            env.onprem[0].fail_rate = 1.0
            env.sagemaker.throttle_rate = 1.0
            pub = env.client.post("/v1/chat/completions", json=chat("weather today"))
            assert pub.status_code == 200 and pub.headers["x-route"] == "fallback"
            assert b"small-pub" in pub.content
            conf = env.client.post("/v1/chat/completions", json=chat(SECRET), headers=secret)
            assert conf.status_code == 200 and conf.headers["x-route"] == "fallback"
            assert b"small-conf" in conf.content
            assert small_pub.requests == 1 and small_conf.requests == 2
            assert not any(SECRET.encode() in b for b in small_pub.bodies)
            assert not any(SECRET.encode() in b for b in env.sagemaker.bodies)
            fallbacks = env.metrics.fallbacks
            assert fallbacks.labels("confidential")._value.get() == 2
            assert fallbacks.labels("public")._value.get() == 1
