"""Overload: twice the on-prem pool's capacity, mixed tiers, through the real router.

High priority keeps ≥ 99% success while low is shed; every answer is a success or a
429/503 with a Retry-After; nothing waits past its deadline (the client's own timeout,
deadline + margin, would fail the request). Bounded: ~240 requests in ~4 s, loopback.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import httpx
import pytest

from tests.fixtures.router_env import RouterEnv, chat

pytestmark = pytest.mark.slow  # end-to-end: real router, test upstreams, load

CONFIDENTIAL = {"X-Data-Classification": "confidential"}  # on-prem only: one pool to overload
DEADLINE_MS = 3000
LATENCY_S = 0.2
LIMIT = 6  # slots of the on-prem pool: capacity = LIMIT / LATENCY_S = 30 req/s
RATE = 60.0  # offered req/s: 2× capacity
DURATION_S = 4.0
TIERS = ["high"] * 2 + ["normal"] * 3 + ["low"] * 5


def _overrides() -> dict:
    return {
        "admission": {
            "pool_limits": {"onprem": LIMIT},
            "reserved": {"high": 0.4, "normal": 0.1, "low": 0.0},
            "queue_size": {"high": 32, "normal": 8, "low": 4},
            "max_queue_wait_s": {"high": 2.5, "normal": 1.0, "low": 0.5},
        },
        "retry": {"max_attempts": 2},
    }


async def _drive(base_url: str) -> list[tuple[str, int, dict]]:
    rng = random.Random(11)
    out: list[tuple[str, int, dict]] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:

        async def one(tier: str) -> None:
            headers = {**CONFIDENTIAL, "X-Priority": tier, "X-Deadline-Ms": str(DEADLINE_MS)}
            # a hang past the deadline (plus generous margin) fails the test right here
            r = await client.post("/v1/chat/completions", json=chat("summarise the report"),
                                  headers=headers, timeout=DEADLINE_MS / 1000 + 10)  # fmt: skip
            out.append((tier, r.status_code, dict(r.headers)))

        tasks = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = int(RATE * DURATION_S)
        for i in range(n):  # open-loop arrivals at a fixed rate, whatever the answers
            delay = start + i / RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(rng.choice(TIERS))))
        await asyncio.gather(*tasks)
    return out


def test_high_priority_survives_twice_the_capacity(tmp_path):
    with RouterEnv.start(tmp_path, sagemaker=False, overrides=_overrides(),
                         latency_s=LATENCY_S, record=False) as env:  # fmt: skip
        results = asyncio.run(_drive(env.router.url))
        shed = env.metrics.shed
        low_shed = sum(
            shed.labels(pool="onprem", tier="low", reason=r)._value.get()
            for r in ("queue_full", "queue_timeout", "deadline")
        )
    assert len(results) == int(RATE * DURATION_S)
    by_tier: dict[str, Counter] = {t: Counter() for t in ("high", "normal", "low")}
    for tier, status, headers in results:
        by_tier[tier][status] += 1
        assert status in (200, 429, 503), (tier, status)
        if status != 200:
            assert int(headers["retry-after"]) >= 1, headers  # well-formed refusal
            assert headers["x-sensitivity"] == "confidential"
    high = by_tier["high"]
    assert high[200] / sum(high.values()) >= 0.99, by_tier
    low = by_tier["low"]
    assert low[200] < sum(low.values()), by_tier  # low was shed ...
    assert low_shed > 0
    low_rate = low[200] / sum(low.values())
    assert low_rate < high[200] / sum(high.values())  # ... before high


def test_a_streamed_answer_holds_its_slot_until_the_stream_ends(tmp_path):
    import threading

    with RouterEnv.start(tmp_path, sagemaker=False, stream_chunks=5, chunk_delay_s=0.3) as env:
        seen: list[int] = []
        body = chat("tell me a story", stream=True)
        headers = {**CONFIDENTIAL, "X-Priority": "high"}

        def in_use() -> int:
            return httpx.get(env.router.url + "/readyz").json()["admission"]["onprem"]["in_use"]

        def stream() -> None:
            with (
                httpx.Client(base_url=env.router.url, timeout=30) as client,
                client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r,
            ):
                for _ in r.iter_bytes():
                    seen.append(1)

        before = in_use()
        t = threading.Thread(target=stream)
        t.start()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:  # the stream has begun ...
            time.sleep(0.02)
        during = in_use()  # ... and holds its slot while it runs (5 chunks × 0.3 s)
        t.join(30)
        assert seen and (before, during, in_use()) == (0, 1, 0)
