"""Response cache in Redis for public, deterministic requests.

Why: the cheapest request is the one the upstream never sees. Only a *public* request
whose answer is deterministic (temperature 0, or the caller said so with the cache
header) may be cached; a confidential request is never looked up or stored, so its
text never lands in a shared store. The key is a SHA-256 of the normalized body and the
model (key order, whitespace and fields that do not change the answer do not matter).
A burst of identical misses calls the upstream once (single-flight). Redis being down
means "no cache", never an error: calls to it have short timeouts, and after a failure
the cache stays off for a moment instead of adding a timeout to every request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from router.config import CacheConfig
from router.upstreams.base import UpstreamReply

log = logging.getLogger("edgepack.router.cache")

# Body fields that never change the model's answer.
IGNORED_FIELDS = frozenset({"user", "stream", "stream_options", "metadata", "request_id"})


@dataclass(frozen=True)
class CachedResponse:
    """What a hit replays: status, content type and body."""

    status: int
    content_type: str
    body: bytes

    def dumps(self) -> bytes:
        return json.dumps(
            {"s": self.status, "t": self.content_type, "b": base64.b64encode(self.body).decode()}
        ).encode()

    @staticmethod
    def loads(raw: bytes) -> CachedResponse:
        d = json.loads(raw)
        return CachedResponse(int(d["s"]), str(d["t"]), base64.b64decode(d["b"]))


def cache_key(
    body: Mapping[str, Any], model: str, api: str = "", prefix: str = "edgepack:cache:v1:"
) -> str:
    """SHA-256 of the canonical JSON of the body (minus ignored fields), model and API."""
    norm = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    norm["model"] = model
    norm["\x00api"] = api
    canon = json.dumps(norm, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return prefix + hashlib.sha256(canon.encode()).hexdigest()


def cache_decision(
    sensitivity: str, body: Mapping[str, Any] | None, headers: Mapping[str, str], cfg: CacheConfig
) -> str:
    """'use' or why not: 'confidential', 'disabled', 'header', 'stream', 'nondeterministic'."""
    if sensitivity != "public":
        return "confidential"  # never looked up, never stored
    if not cfg.enabled or body is None:
        return "disabled"
    asked = (headers.get(cfg.header) or "").strip().lower()
    if asked == "bypass":
        return "header"
    if body.get("stream"):
        return "stream"
    if asked == "allow":
        return "use"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature == 0:
        return "use"
    return "nondeterministic"


class ResponseCache:
    """Fail-open Redis cache with in-process single-flight."""

    def __init__(
        self,
        cfg: CacheConfig,
        metrics: object | None = None,
        client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self._clock = clock
        self._client = client if client is not None else self._connect(cfg)
        self._off_until = 0.0

    @staticmethod
    def _connect(cfg: CacheConfig) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(
            cfg.url,
            socket_timeout=cfg.timeout_s,
            socket_connect_timeout=cfg.timeout_s,
            retry_on_timeout=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def get(self, key: str) -> CachedResponse | None:
        if self._clock() < self._off_until:
            return None
        try:
            raw = await self._client.get(key)
        except Exception as exc:  # Redis down/slow: no cache, not an error
            self._failed("get", exc)
            return None
        if raw is None:
            return None
        try:
            return CachedResponse.loads(raw)
        except (ValueError, KeyError, TypeError):
            return None

    async def put(self, key: str, value: CachedResponse) -> None:
        if self._clock() < self._off_until or len(value.body) > self.cfg.max_entry_bytes:
            return
        try:
            await self._client.set(key, value.dumps(), ex=self.cfg.ttl_s)
        except Exception as exc:
            self._failed("set", exc)

    def _failed(self, op: str, exc: BaseException) -> None:
        count(self.metrics, "error")
        self._off_until = self._clock() + self.cfg.off_after_error_s
        log.warning("redis %s failed (%s); cache off for %.1fs", op, type(exc).__name__,
                    self.cfg.off_after_error_s)  # fmt: skip


class CacheSeam:
    """The handler's cache step (router.steps.Cache) over `ResponseCache`.

    The handler never calls it for confidential requests; it checks again anyway. A miss
    that may be cached makes this request the leader of its key: identical requests that
    arrive meanwhile wait for the leader's `store` instead of calling the upstream. If the
    leader ends without storing (an error), they go to the upstream themselves.
    """

    def __init__(self, cfg: CacheConfig, metrics: object | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.cache = ResponseCache(cfg, metrics) if cfg.enabled else None
        self._flights: dict[str, asyncio.Future[CachedResponse | None]] = {}

    @property
    def active(self) -> bool:
        """False while the cache is off in the config: the handler then skips this step."""
        return self.cache is not None

    def _key(self, ctx: Any) -> str | None:
        if self.cache is None:
            return None
        decision = getattr(ctx, "decision", None)
        sensitivity = getattr(decision, "sensitivity", "confidential")
        why = cache_decision(sensitivity, ctx.payload, ctx.headers, self.cfg)
        if why != "use":
            if why != "confidential":  # confidential requests leave no trace here at all
                count(self.metrics, "bypass")
            return None
        model = str(ctx.payload.get("model", ""))
        return cache_key(ctx.payload, model, str(getattr(ctx.api, "value", ctx.api)),
                         self.cfg.key_prefix)  # fmt: skip

    async def lookup(self, ctx: Any) -> Any:
        key = self._key(ctx)
        ctx.cache_key = key
        if key is None:
            return None
        hit = await self.cache.get(key)
        if hit is None:
            flight = self._flights.get(key)
            if flight is not None:
                remaining = max(ctx.deadline - time.monotonic(), 0.001)
                with contextlib.suppress(TimeoutError):
                    hit = await asyncio.wait_for(asyncio.shield(flight), remaining)
        if hit is None:
            count(self.metrics, "miss")
            self._lead(key)
            return None
        count(self.metrics, "hit")
        ctx.cache_key = None  # nothing to store
        return UpstreamReply(hit.status, hit.content_type, body=hit.body, upstream="cache")

    async def store(self, ctx: Any, reply: Any) -> None:
        """Keep a whole 200 answer of the main model (the smaller fallback model's answer
        must not stand in for it), and release the requests waiting on this one whatever
        the answer: they take the kept answer, or call the upstream themselves now rather
        than when this request's task ends."""
        key = getattr(ctx, "cache_key", None)
        if key is None:
            return
        storable = (
            reply.body is not None
            and reply.status == 200
            and getattr(ctx, "route", "") != "fallback"
        )
        value = CachedResponse(reply.status, reply.content_type, reply.body) if storable else None
        flight = self._flights.pop(key, None)
        if flight is not None and not flight.done():
            flight.set_result(value)
        if value is not None:
            await self.cache.put(key, value)

    def _lead(self, key: str) -> None:
        """Make the current request the leader for `key` until it stores or ends."""
        if key in self._flights:
            return
        fut: asyncio.Future[CachedResponse | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = fut
        task = asyncio.current_task()

        def ended(_: object) -> None:
            if self._flights.get(key) is fut:
                del self._flights[key]
            if not fut.done():
                fut.set_result(None)  # followers call the upstream themselves

        if task is not None:
            task.add_done_callback(ended)

    def reconfigure(self, cfg: CacheConfig) -> None:
        """SIGHUP: a new TTL applies at once; a new URL or on/off gets a new client (the old
        one is closed after a moment, when lookups in flight are done)."""
        if cfg == self.cfg:
            return
        old = self.cache
        if cfg.enabled and old is not None and cfg.url == self.cfg.url:
            old.cfg = cfg
        else:
            self.cache = ResponseCache(cfg, self.metrics) if cfg.enabled else None
            if old is not None:
                task = asyncio.get_running_loop().create_task(_close_later(old))
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)
        self.cfg = cfg

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()


_BACKGROUND: set[asyncio.Task] = set()


async def _close_later(cache: ResponseCache, after_s: float = 5.0) -> None:
    await asyncio.sleep(after_s)
    with contextlib.suppress(Exception):
        await cache.close()


def count(metrics: Any, result: str) -> None:
    """Count a lookup: hit | miss | bypass | error (the metric's label)."""
    if metrics is not None:
        metrics.child(metrics.cache, result).inc()
