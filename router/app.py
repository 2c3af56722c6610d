"""The router's ASGI app: the proxied APIs, startup/shutdown, health and metrics.

`build_app(config)` wires the request path (router/handler.py) to its parts:
classifier (router/sensitivity/), pools (router/upstreams/), resilience steps
(`build_steps`; their protocols in router/steps.py), metrics (router/metrics.py);
`apply_config` switches a running app to a reloaded config. The three proxied APIs share one
handler, parameterised by `Api`, and are dispatched on raw ASGI (router/asgi.py says why);
everything else (lifespan, /v1/classify, probes, /metrics) is a small Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router import ingress, logs, respond
from router.admission import AdmissionSeam, pool_limits
from router.asgi import Receive, Scope, Send, read_body
from router.breaker import BreakerSet
from router.cache import CacheSeam
from router.config import RouterConfig
from router.context import Api
from router.drain import DrainState
from router.errors import RouterError, bad_request
from router.handler import Handler
from router.metrics import RouterMetrics
from router.retry import RetrySeam
from router.sensitivity.classifier import Classifier, build_classifier
from router.steps import Steps
from router.upstreams.base import Pool
from router.upstreams.fallback import build_fallback
from router.upstreams.onprem import OnPremPool
from router.upstreams.sagemaker import SageMakerPool

log = logging.getLogger("edgepack.router.app")


def build_steps(config: RouterConfig, metrics: RouterMetrics) -> Steps:
    """The resilience steps for this config: admission, retry, breaker, cache, drain."""
    return Steps(
        admission=AdmissionSeam(config.admission, pool_limits_for(config), metrics),
        retry=RetrySeam(config.retry, metrics),
        cache=CacheSeam(config.cache, metrics),
        outlier=BreakerSet(config.breaker, metrics),
        lifecycle=DrainState(config.drain),
    )


def build_pools(config: RouterConfig, metrics: RouterMetrics, steps: Steps) -> dict[str, Pool]:
    pools: dict[str, Pool] = {"onprem": OnPremPool(config.onprem, metrics, steps.outlier)}
    if config.sagemaker is not None:
        pools["sagemaker"] = SageMakerPool(config.sagemaker, metrics)
    fallback = build_fallback(config, metrics, steps.outlier)
    if fallback is not None:
        pools["fallback"] = fallback
    return pools


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


def pool_limits_for(config: RouterConfig) -> dict[str, int]:
    return pool_limits(config.admission, pool_sizes(config))


def steps_status(steps: Steps) -> dict[str, object]:
    """Resilience state for /readyz: admission per pool, breakers."""
    out: dict[str, object] = {}
    for name in ("admission", "outlier"):
        part = getattr(steps, name)
        if hasattr(part, "snapshot"):
            out["breakers" if name == "outlier" else name] = part.snapshot()
    return out


def reconfigure(steps: Steps, config: RouterConfig) -> None:
    """SIGHUP: new settings for every step; their state (breakers, budgets, slots) stays."""
    if hasattr(steps.admission, "reconfigure"):
        steps.admission.reconfigure(config.admission, pool_limits_for(config))
    if hasattr(steps.retry, "reconfigure"):
        steps.retry.reconfigure(config.retry)
    if hasattr(steps.outlier, "reconfigure"):
        steps.outlier.reconfigure(config.breaker)
    if hasattr(steps.cache, "reconfigure"):
        steps.cache.reconfigure(config.cache)
    if hasattr(steps.lifecycle, "cfg"):
        steps.lifecycle.cfg = config.drain


def build_app(
    config: RouterConfig,
    *,
    metrics: RouterMetrics | None = None,
    classifier: Classifier | None = None,
    steps: Steps | None = None,
    pools: dict[str, Pool] | None = None,
) -> Starlette:
    """The app for `config`; tests pass their own metrics registry, classifier or pools."""
    metrics = metrics or RouterMetrics()
    steps = steps or build_steps(config, metrics)
    classifier = classifier or build_classifier(
        config.classifier, metrics, config.limits.max_body_bytes
    )
    pools = pools if pools is not None else build_pools(config, metrics, steps)
    handler = Handler(config, classifier, pools, steps, metrics)
    metrics.watch(metrics.confidential_route_usable, lambda: _usable(pools.get("onprem")))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for pool in pools.values():
            await pool.start()
        publishing = None
        if metrics.multiprocess_dir:
            publishing = asyncio.get_running_loop().create_task(metrics.publish_forever())
        try:
            yield
        finally:
            if publishing is not None:
                publishing.cancel()
                metrics.publish()  # the last second's counts too
            for pool in pools.values():
                await pool.close()
            if classifier.batcher is not None:
                classifier.batcher.close()
            logs.REQUESTS.flush()
            if hasattr(steps.cache, "close"):
                await steps.cache.close()

    async def classify(request: Request) -> Response:
        try:
            texts, headers = await _classify_input(request, config.limits.max_body_bytes)
        except RouterError as err:
            return respond.error_response(err)
        decision = await classifier.classify(texts, headers)
        return JSONResponse(decision.as_json())

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        routes = {name: pool.usable() for name, pool in pools.items()}
        ok = classifier.ready and any(routes.values()) and not steps.lifecycle.draining
        body = {
            "ready": ok,
            "classifier": classifier.ready,
            "routes": routes,
            "draining": steps.lifecycle.draining,
            **steps_status(steps),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        *(Route(path, _post_only, methods=["GET", "PUT", "DELETE", "PATCH"]) for path in PROXIED),
        Route("/v1/classify", classify, methods=["POST"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    control = Starlette(routes=routes, lifespan=lifespan)
    control.state.handler = handler
    control.state.classifier = classifier
    control.state.pools = pools
    control.state.steps = steps
    control.state.metrics = metrics
    return RouterApp(handler, control)


PROXIED = {api.upstream_path: api for api in Api}  # the router serves the upstreams' paths


class RouterApp:
    """POSTs to the proxied APIs go straight to the handler; the rest to `control`."""

    def __init__(self, handler: Handler, control: Starlette) -> None:
        self.handler = handler
        self.control = control
        self.state = control.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            api = PROXIED.get(scope["path"])
            if api is not None:
                await self.handler(scope, receive, send, api)
                return
        await self.control(scope, receive, send)

    def lifespan_context(self) -> contextlib.AbstractAsyncContextManager:
        """Start and stop the pools without a server (tests, benchmarks)."""
        return self.control.router.lifespan_context(self.control)


def _usable(pool: Pool | None) -> int:
    return 1 if pool is not None and pool.usable() else 0


async def _post_only(request: Request) -> Response:
    return respond.error_response(
        RouterError(405, "method_not_allowed", f"{request.url.path} takes POST only")
    )


async def _classify_input(request: Request, limit: int) -> tuple[list[str], dict[str, str]]:
    """`{"text": ...}` or an OpenAI chat/completions body → the texts to classify."""
    body = await read_body(request.receive, request.headers.get("content-length"), limit)
    headers = {k.lower(): v for k, v in request.headers.items()}
    payload = ingress.json_object(body)
    if isinstance(payload.get("text"), str):
        return [payload["text"]], headers
    if "messages" in payload:
        return ingress.chat_texts(payload["messages"]), headers
    if "prompt" in payload:
        return ingress.prompt_texts(payload["prompt"]), headers
    raise bad_request("missing field: text (or messages / prompt)")


def apply_config(app: RouterApp, config: RouterConfig) -> None:
    """Switch a running router app to `config` without dropping requests in flight.

    Requests already in flight keep the pools and settings they started with; the
    resilience steps keep their state (breakers, budgets, held slots) under the new
    settings. Pools whose section changed are rebuilt and started before the swap; the
    old ones are closed once no request can still be using them (after the deadline).
    The listen address and the classifier are not reloaded (they need a restart).
    """
    handler = app.state.handler
    old_config = handler.config
    steps = app.state.steps
    reconfigure(steps, config)
    changed = [
        name for name in ("onprem", "sagemaker", "fallback")
        if getattr(old_config, name) != getattr(config, name)
    ]  # fmt: skip
    handler.config = config
    if not changed:
        return
    fresh = build_pools(config, app.state.metrics, steps)
    task = asyncio.get_running_loop().create_task(
        _swap_pools(app.state.pools, fresh, changed, config.limits.deadline_s)
    )
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task] = set()


async def _swap_pools(pools: dict, fresh: dict, changed: list[str], linger_s: float) -> None:
    keys = {"onprem": ["onprem"], "sagemaker": ["sagemaker"], "fallback": ["fallback"]}
    old = []
    for section in changed:
        for name in keys[section]:
            if name in fresh:
                await fresh[name].start()
            if name in pools:
                old.append(pools[name])
            if name in fresh:
                pools[name] = fresh[name]  # the handler and /readyz share this dict
            else:
                pools.pop(name, None)
    log.info("pools reloaded: %s", ", ".join(changed))
    await asyncio.sleep(linger_s)
    for pool in old:
        await pool.close()
