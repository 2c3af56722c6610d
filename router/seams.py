"""Where issue 7's resilience steps plug into the request path; pass-through until then.

The handler (router/handler.py) runs, for each route the policy allows:

    cache.lookup → admission.admit(route) → retry.call(route, attempt) → cache.store

and each pool consults its `Outlier` detector when it picks an upstream. The defaults here
do nothing beyond one attempt, so the core router is complete on its own:

- `Admission.admit(ctx, route)` is an async context manager held while the request uses a
  slot of `route`'s pool; to shed, raise `RouterError(429|503, ..., retry_after=s)`.
- `Retry.call(ctx, route, attempt)` awaits `attempt()` (one pick + call, raises
  `UpstreamFailure`) as often as it judges safe; it must re-raise the last failure.
- `Cache.lookup(ctx)` returns a stored `UpstreamReply` or None; `Cache.store(ctx, reply)` may
  keep a whole-body reply. The handler never calls either for confidential requests, nor
  while `Cache.active` is false (no cache configured: two awaits per request saved).
- `Outlier.allow(pool, upstream)` / `record(pool, upstream, ok)`: breaker / outlier ejection
  per upstream; the default ejects nothing (the on-prem pool's own health checks still do).
- `Lifecycle.draining`: /readyz turns 503 and new requests get 503 + Retry-After.

`build_seams` is the one function issue 7 edits to install its modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from router.config import RouterConfig
    from router.context import RequestContext
    from router.metrics import RouterMetrics
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
class Seams:
    admission: Admission = field(default_factory=AdmitAll)
    retry: Retry = field(default_factory=OneAttempt)
    cache: Cache = field(default_factory=NoCache)
    outlier: Outlier = field(default_factory=NoOutlier)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)


def build_seams(config: RouterConfig, metrics: RouterMetrics) -> Seams:
    """The resilience steps for this config (issue 7: admission, retry, breaker, cache, drain)."""
    from router.admission import AdmissionSeam
    from router.breaker import BreakerSet
    from router.cache import CacheSeam
    from router.drain import DrainState
    from router.retry import RetrySeam

    return Seams(
        admission=AdmissionSeam(config.admission, pool_limits_for(config), metrics),
        retry=RetrySeam(config.retry, metrics),
        cache=CacheSeam(config.cache, metrics),
        outlier=BreakerSet(config.breaker, metrics),
        lifecycle=DrainState(config.drain),
    )


def pool_sizes(config: RouterConfig) -> dict[str, int]:
    """Default concurrency limit of each pool (admission.pool_limits overrides)."""
    per = config.admission.per_upstream_limit
    sizes = {"onprem": per * len(config.onprem.upstreams)}
    if config.sagemaker is not None:
        sizes["sagemaker"] = config.sagemaker.max_concurrency
    for cls in ("confidential", "public"):
        fb = getattr(config.fallback, cls)
        if fb is not None:
            sizes[f"fallback-{cls}"] = per * len(fb.upstreams)
    return sizes


def status(seams: Seams) -> dict[str, object]:
    """Resilience state for /readyz: admission per pool, breakers, draining."""
    out: dict[str, object] = {}
    for name in ("admission", "outlier"):
        part = getattr(seams, name)
        if hasattr(part, "snapshot"):
            out["breakers" if name == "outlier" else name] = part.snapshot()
    return out


def reconfigure(seams: Seams, config: RouterConfig) -> None:
    """SIGHUP: new settings for every step; their state (breakers, budgets, slots) stays."""
    if hasattr(seams.admission, "reconfigure"):
        limits = pool_limits_for(config)
        seams.admission.reconfigure(config.admission, limits)
    if hasattr(seams.retry, "reconfigure"):
        seams.retry.reconfigure(config.retry)
    if hasattr(seams.outlier, "reconfigure"):
        seams.outlier.reconfigure(config.breaker)
    if hasattr(seams.cache, "reconfigure"):
        seams.cache.reconfigure(config.cache)
    if hasattr(seams.lifecycle, "cfg"):
        seams.lifecycle.cfg = config.drain


def pool_limits_for(config: RouterConfig) -> dict[str, int]:
    from router.admission import pool_limits

    return pool_limits(config.admission, pool_sizes(config))
