"""The protocols of the request path's resilience steps, and a pass-through for each.

The handler (router/handler.py) runs, for each route the policy allows:

    cache.lookup → admission.admit(route) → retry.call(route, attempt) → cache.store

and each pool consults its `Outlier` detector when it picks an upstream. `app.build_steps`
composes the real steps (admission, retry, breaker, cache, drain); `Steps()` keeps the
pass-through defaults, which do nothing beyond one attempt, so the core path runs alone
(tests, benchmarks). The contracts:

- `Admission.admit(ctx, route)` is an async context manager held while the request uses a
  slot of `route`'s pool; to shed, raise `RouterError(429|503, ..., retry_after=s)`.
- `Retry.call(ctx, route, attempt)` awaits `attempt()` (one pick + call, raises
  `UpstreamFailure`) as often as it judges safe; it must re-raise the last failure.
- `Cache.lookup(ctx)` returns a stored `UpstreamReply` or None; `Cache.store(ctx, reply)` is
  called with every reply of a request that looked up, and may keep a whole-body one. The
  handler never calls either for confidential requests, nor while `Cache.active` is false
  (no cache configured: two awaits per request saved).
- `Outlier.allow(pool, upstream)` / `record(pool, upstream, ok)`: breaker / outlier ejection
  per upstream; the default ejects nothing (the on-prem pool's own health checks still do).
- `Lifecycle.draining`: /readyz turns 503 and new requests get 503 + Retry-After.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from router.context import RequestContext
    from router.upstreams.base import UpstreamReply

Attempt = Callable[[], Awaitable["UpstreamReply"]]


class Admission(Protocol):
    def admit(self, ctx: RequestContext, route: str) -> contextlib.AbstractAsyncContextManager: ...


class Retry(Protocol):
    async def call(self, ctx: RequestContext, route: str, attempt: Attempt) -> UpstreamReply: ...


class Cache(Protocol):
    active: bool

    async def lookup(self, ctx: RequestContext) -> UpstreamReply | None: ...

    async def store(self, ctx: RequestContext, reply: UpstreamReply) -> None: ...


class Outlier(Protocol):
    def allow(self, pool: str, upstream: str) -> bool: ...

    def record(self, pool: str, upstream: str, ok: bool) -> None: ...


class AdmitAll:
    @contextlib.asynccontextmanager
    async def admit(self, ctx: RequestContext, route: str) -> AsyncIterator[None]:
        yield


class OneAttempt:
    async def call(self, ctx: RequestContext, route: str, attempt: Attempt) -> UpstreamReply:
        ctx.attempts += 1
        return await attempt()


class NoCache:
    active = False

    async def lookup(self, ctx: RequestContext) -> UpstreamReply | None:
        return None

    async def store(self, ctx: RequestContext, reply: UpstreamReply) -> None:
        return None


class NoOutlier:
    def allow(self, pool: str, upstream: str) -> bool:
        return True

    def record(self, pool: str, upstream: str, ok: bool) -> None:
        return None


@dataclass
class Lifecycle:
    draining: bool = False


@dataclass
class Steps:
    admission: Admission = field(default_factory=AdmitAll)
    retry: Retry = field(default_factory=OneAttempt)
    cache: Cache = field(default_factory=NoCache)
    outlier: Outlier = field(default_factory=NoOutlier)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
