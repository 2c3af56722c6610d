"""The Redis response cache against a real redis-server: hits, TTL, single-flight,
confidential bypass, and Redis killed mid-test (no cache, no error)."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from router.cache import CacheConfig, CachedResponse, ResponseCache, cache_decision, cache_key
from router.metrics import RouterMetrics
from tests.fixtures.redis import RedisServer

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as srv:
        yield srv


def _cache(srv, **kw) -> tuple[ResponseCache, RouterMetrics]:
    m = RouterMetrics()
    cfg = CacheConfig(enabled=True, url=srv.url, **kw)
    return ResponseCache(cfg, metrics=m), m


def _count(m: RouterMetrics, result: str) -> float:
    return m.registry.get_sample_value("edgepack_router_cache_total", {"result": result}) or 0.0


def test_key_ignores_order_whitespace_and_irrelevant_fields():
    a = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "user": "u1"}
    b = {"temperature": 0, "user": "u2", "stream": False,
         "messages": [{"content": "hi", "role": "user"}]}  # fmt: skip
    assert cache_key(a, "m") == cache_key(b, "m")
    assert cache_key(a, "m") != cache_key(a, "other-model")
    assert cache_key(a, "m", "chat") != cache_key(a, "m", "completions")
    assert cache_key(a, "m") != cache_key({**a, "temperature": 0.5}, "m")


def test_only_public_deterministic_requests_are_cacheable():
    cfg = CacheConfig(enabled=True)
    det = {"temperature": 0, "messages": []}
    assert cache_decision("public", det, {}, cfg) == "use"
    assert cache_decision("confidential", det, {}, cfg) == "confidential"
    assert cache_decision("confidential", det, {"x-edgepack-cache": "allow"}, cfg) == "confidential"
    assert cache_decision("public", {"temperature": 0.7}, {}, cfg) == "nondeterministic"
    assert cache_decision("public", {}, {}, cfg) == "nondeterministic"
    assert (
        cache_decision("public", {"temperature": 0.7}, {"x-edgepack-cache": "allow"}, cfg) == "use"
    )
    assert cache_decision("public", det, {"x-edgepack-cache": "bypass"}, cfg) == "header"
    assert cache_decision("public", {**det, "stream": True}, {}, cfg) == "stream"
    assert cache_decision("public", det, {}, CacheConfig()) == "disabled"


@needs_redis
def test_get_after_put_and_ttl_expiry(redis_server):
    async def main():
        cache, _ = _cache(redis_server, ttl_s=1)
        value = CachedResponse(200, "application/json", b'{"n": 1}')
        assert await cache.get("k1") is None
        await cache.put("k1", value)
        assert await cache.get("k1") == value
        ttl = redis_server.client().pttl("k1")
        assert 0 < ttl <= 1000
        await asyncio.sleep(1.2)
        assert await cache.get("k1") is None
        await cache.close()

    asyncio.run(main())


@needs_redis
def test_redis_killed_mid_test_means_no_cache_not_an_error(redis_server):
    async def main():
        cache, m = _cache(redis_server, off_after_error_s=30)
        ok = CachedResponse(200, "application/json", b"v")
        await cache.put("k5", ok)
        assert await cache.get("k5") == ok
        redis_server.kill()
        for _ in range(10):
            assert await cache.get("k5") is None
            await cache.put("k5", ok)
        assert _count(m, "error") == 1  # after one error the cache stays off, no timeout each time
        await cache.close()

    asyncio.run(main())


def _env(tmp_path, srv, **cache):
    from tests.fixtures.router_env import RouterEnv

    overrides = {"cache": {"enabled": True, "url": srv.url, "ttl_s": 30, **cache}}
    return RouterEnv.start(tmp_path, overrides=overrides)


@needs_redis
def test_router_serves_repeats_from_cache_and_never_caches_confidential(redis_server, tmp_path):
    from tests.fixtures.router_env import chat

    with _env(tmp_path, redis_server) as env:
        body = chat("what is the boiling point of water", temperature=0)
        first = env.client.post("/v1/chat/completions", json=body)
        second = env.client.post("/v1/chat/completions", json=body)
        assert first.status_code == second.status_code == 200
        assert first.headers["x-route"] == "sagemaker" and second.headers["x-route"] == "cache"
        assert second.content == first.content and env.sagemaker.requests == 1
        hot = env.client.post("/v1/chat/completions", json=chat("a poem", temperature=0.9))
        assert hot.headers["x-route"] != "cache"
        assert redis_server.client().dbsize() == 1  # only the deterministic public answer
        secret = chat("the merger memo", temperature=0)
        headers = {"X-Data-Classification": "confidential"}
        for _ in range(2):
            r = env.client.post("/v1/chat/completions", json=secret, headers=headers)
            assert r.status_code == 200 and r.headers["x-route"] == "onprem"
        assert sum(f.requests for f in env.onprem) == 2  # both reached on-prem
        assert redis_server.client().dbsize() == 1  # confidential: never stored
        rc = redis_server.client()
        assert not any(b"merger" in rc.get(k) for k in rc.scan_iter())


@needs_redis
def test_router_single_flight_and_redis_killed_mid_test(redis_server, tmp_path):
    import httpx

    from tests.fixtures.router_env import chat

    with _env(tmp_path, redis_server) as env:
        env.sagemaker.latency_s = 0.3
        body = chat("explain tides", temperature=0)

        async def burst():
            async with httpx.AsyncClient(base_url=env.router.url, timeout=30) as client:
                return await asyncio.gather(
                    *(client.post("/v1/chat/completions", json=body) for _ in range(10))
                )

        answers = asyncio.run(burst())
        assert [a.status_code for a in answers] == [200] * 10
        assert env.sagemaker.requests == 1  # the burst of identical misses called once
        assert len({a.content for a in answers}) == 1
        redis_server.kill()
        r = env.client.post("/v1/chat/completions", json=chat("new question", temperature=0))
        assert r.status_code == 200 and r.headers["x-route"] == "sagemaker"
        r = env.client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["x-route"] == "sagemaker"  # no cache now
        assert _count(env.metrics, "error") >= 1


@needs_redis
def test_cache_seam_never_stores_a_fallback_answer(redis_server):
    from types import SimpleNamespace

    from router.cache import CacheSeam
    from router.upstreams.base import UpstreamReply

    async def main():
        seam = CacheSeam(CacheConfig(enabled=True, url=redis_server.url))
        public = SimpleNamespace(sensitivity="public", confidential=False)

        def ctx(route: str):
            body = {
                "model": "m",
                "temperature": 0,
                "messages": [{"role": "user", "content": route}],
            }
            return SimpleNamespace(decision=public, payload=body, headers={}, api="chat",
                                   deadline=time.monotonic() + 5, route=route)  # fmt: skip

        for route in ("fallback", "onprem"):
            c = ctx(route)
            assert await seam.lookup(c) is None
            await seam.store(c, UpstreamReply(200, "application/json", body=b"{}"))
        assert redis_server.client().dbsize() == 1  # only the main model's answer
        assert (await seam.lookup(ctx("onprem"))).upstream == "cache"
        assert await seam.lookup(ctx("fallback")) is None
        await seam.close()

    asyncio.run(main())


@needs_redis
def test_cache_seam_reconfigure_applies_ttl_and_switches_off(redis_server):
    async def main():
        from router.cache import CacheSeam

        seam = CacheSeam(CacheConfig(enabled=True, url=redis_server.url, ttl_s=100))
        first = seam.cache
        seam.reconfigure(CacheConfig(enabled=True, url=redis_server.url, ttl_s=7))
        assert seam.cache is first and seam.cache.cfg.ttl_s == 7
        await seam.cache.put("k", CachedResponse(200, "t", b"v"))
        assert 0 < redis_server.client().ttl("k") <= 7
        seam.reconfigure(CacheConfig(enabled=False))
        assert seam.cache is None
        await first.close()

    asyncio.run(main())
