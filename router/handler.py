"""The request path, one function per step, for every proxied API:

    parse (ingress) → classify (sensitivity) → policy → [cache] → admit → pick+call (pool,
    inside retry) → respond

One parameterised handler serves /v1/chat/completions, /v1/completions and /invocations.
The resilience steps plug in through `router.steps.Steps` (see its docstring); the policy's route
list is the only set of routes any step may use, and `policy.allowed` is checked again right
before each call, so no step can send a confidential request to the cloud.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from router import ingress, policy, respond
from router.asgi import CUT, Receive, Scope, Send, then
from router.config import RouterConfig
from router.context import Api, RequestContext
from router.errors import RouterError, no_route
from router.metrics import RouterMetrics
from router.sensitivity.classifier import Classifier
from router.steps import Steps
from router.upstreams.base import Pool, UpstreamFailure, UpstreamReply

LOG = logging.getLogger("edgepack.router")


@dataclass(eq=False)
class Generation:
    """One config in force: its settings, classification rules and pools. A request reads
    the live generation once, as it starts, and keeps it to its end, so no request is
    classified by one config and routed by another; a reload (router/app.py) puts a new
    one in force and is told by `on_idle` when the last request of the old one ended."""

    config: RouterConfig
    classifier: Classifier
    pools: dict[str, Pool]
    digest: str = ""  # the config's hash, reported by /readyz
    in_flight: int = 0
    on_idle: Callable[[Generation], None] | None = None


class Handler:
    def __init__(
        self,
        config: RouterConfig,
        classifier: Classifier,
        pools: dict[str, Pool],
        steps: Steps,
        metrics: RouterMetrics,
        digest: str = "",
    ) -> None:
        self.live = Generation(config, classifier, pools, digest)
        self.steps = steps
        self.metrics = metrics
        self.in_flight = 0  # exported as edgepack_router_in_flight when scraped
        metrics.watch(metrics.in_flight, lambda: self.in_flight)

    @property
    def config(self) -> RouterConfig:
        return self.live.config

    @config.setter
    def config(self, config: RouterConfig) -> None:  # tests change a setting in place
        self.live.config = config

    @property
    def classifier(self) -> Classifier:
        return self.live.classifier

    @property
    def pools(self) -> dict[str, Pool]:
        return self.live.pools

    async def __call__(self, scope: Scope, receive: Receive, send: Send, api: Api) -> None:
        """In flight (the gauge) until the reply, or its stream's last chunk, is sent."""
        gen = self.live
        gen.in_flight += 1
        self.in_flight += 1
        try:
            ctx: RequestContext | None = None
            try:
                if self.steps.lifecycle.draining:
                    raise no_route("the router is shutting down", retry_after=1)
                limits = gen.config.limits
                ctx = await ingress.parse(
                    scope, receive, api, limits.max_body_bytes, limits.deadline_s
                )
                ctx.decision = await gen.classifier.classify(
                    ctx.texts, ctx.headers, ctx.opaque, ctx.fields, ctx.deadline
                )
                reply = await self.route(ctx, gen)
            except RouterError as err:
                await self._refuse(send, err, ctx, api)
                return
            except Exception as exc:  # a bug still gets an answer, a count and a log line
                LOG.error("request failed", extra={"fields": {"error": type(exc).__name__}})
                await self._refuse(
                    send, RouterError(500, "internal_error", "internal error"), ctx, api
                )
                return
            await respond.send_reply(send, receive, ctx, reply, self.metrics, scope.get(CUT))
        finally:
            self.in_flight -= 1
            gen.in_flight -= 1
            if gen.on_idle is not None and not gen.in_flight:
                gen.on_idle(gen)

    async def _refuse(
        self, send: Send, err: RouterError, ctx: RequestContext | None, api: Api
    ) -> None:
        if ctx is not None:
            respond.finish(ctx, err.status, self.metrics)
        else:
            respond.refused(self.metrics, api.value, err.status, err.message)
        await respond.send_error(send, err, ctx)

    async def route(self, ctx: RequestContext, gen: Generation | None = None) -> UpstreamReply:
        """Try each allowed route in order; the last failure becomes the answer. A pool is
        asked `usable()` once up front (that list is `ctx.routes`), and again only for a
        route tried after another one failed: its state may have changed meanwhile."""
        decision = ctx.decision
        assert decision is not None
        gen = gen or self.live
        pools = gen.pools
        routes = policy.routes_for(
            decision, gen.config.policy, "sagemaker" in pools, "fallback" in pools
        )
        ctx.routes = tuple(r for r in routes if r in pools and pools[r].usable())
        cache = self.steps.cache
        cacheable = cache.active and not decision.confidential
        if cacheable:
            cached = await cache.lookup(ctx)
            if cached is not None:
                ctx.route = "cache"
                return cached
        failure: UpstreamFailure | None = None
        for route in routes:
            pool = pools.get(route)
            if pool is None or not policy.allowed(decision, route):
                continue
            if not (route in ctx.routes if failure is None else pool.usable()):
                continue
            if ctx.remaining() <= 0:
                break
            try:
                reply = await self.call(ctx, route, pool)
            except UpstreamFailure as exc:
                failure = exc
                if not exc.retryable:
                    break
                continue
            if cacheable:  # a stream is not kept, but its followers are released
                await cache.store(ctx, reply)
            return reply
        raise _answer_for(failure, ctx)

    async def call(self, ctx: RequestContext, route: str, pool: Pool) -> UpstreamReply:
        """Admit, then pick + call inside the retry step. A stream keeps its admission slot
        until its last chunk: the slot's exit moves into the stream."""
        admit = self.steps.admission.admit(ctx, route)
        await admit.__aenter__()
        try:
            ctx.route = route
            reply = await self.steps.retry.call(ctx, route, lambda: pool.send(ctx))
        except BaseException as exc:
            await admit.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        ctx.upstream = reply.upstream
        if reply.stream is None:
            await admit.__aexit__(None, None, None)
        else:
            reply.stream = then(reply.stream, lambda: admit.__aexit__(None, None, None))
        return reply


def _answer_for(failure: UpstreamFailure | None, ctx: RequestContext) -> RouterError:
    if ctx.remaining() <= 0:
        return RouterError(504, "deadline_exceeded", "the request deadline passed")
    if failure is None:
        return no_route("no upstream may take this request now")
    retry_after = failure.retry_after if failure.retry_after is not None else None
    if failure.status in (429, 503) and retry_after is None:
        retry_after = 1.0
    return RouterError(failure.status, failure.kind, failure.message, retry_after)
