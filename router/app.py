"""The router's ASGI app: the proxied APIs, startup/shutdown, health and metrics.

`build_app(config)` wires the request path (router/handler.py) to its parts:
classifier (router/sensitivity/), pools (router/upstreams/), resilience seams
(router/seams.py), metrics (router/metrics.py). The three proxied APIs share one
handler, parameterised by `Api`, and are dispatched on raw ASGI (router/asgi.py says why);
everything else (lifespan, /v1/classify, probes, /metrics) is a small Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router import ingress, logs, respond
from router.asgi import Receive, Scope, Send, read_body
from router.config import RouterConfig
from router.context import Api
from router.errors import RouterError, bad_request
from router.handler import Handler
from router.metrics import RouterMetrics
from router.seams import Seams, build_seams
from router.seams import status as seams_status
from router.sensitivity.classifier import Classifier, build_classifier
from router.upstreams.base import Pool


def build_pools(config: RouterConfig, metrics: RouterMetrics, seams: Seams) -> dict[str, Pool]:
    from router.upstreams.onprem import OnPremPool

    bounds = {"timeouts": config.timeouts, "responses": config.responses}
    pools: dict[str, Pool] = {"onprem": OnPremPool(config.onprem, metrics, seams.outlier, **bounds)}
    if config.sagemaker is not None:
        from router.upstreams.sagemaker import SageMakerPool

        pools["sagemaker"] = SageMakerPool(config.sagemaker, metrics, responses=config.responses)
    from router.fallback import build_fallback

    fallback = build_fallback(config, metrics, seams.outlier)
    if fallback is not None:
        pools["fallback"] = fallback
    return pools


def build_app(
    config: RouterConfig,
    *,
    metrics: RouterMetrics | None = None,
    classifier: Classifier | None = None,
    seams: Seams | None = None,
    pools: dict[str, Pool] | None = None,
) -> Starlette:
    """The app for `config`; tests pass their own metrics registry, classifier or pools."""
    metrics = metrics or RouterMetrics()
    seams = seams or build_seams(config, metrics)
    classifier = classifier or build_classifier(config.classifier, metrics)
    pools = pools if pools is not None else build_pools(config, metrics, seams)
    handler = Handler(config, classifier, pools, seams, metrics)
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
            if hasattr(seams.cache, "close"):
                await seams.cache.close()

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
        ok = classifier.ready and any(routes.values()) and not seams.lifecycle.draining
        body = {
            "ready": ok,
            "classifier": classifier.ready,
            "routes": routes,
            "draining": seams.lifecycle.draining,
            **seams_status(seams),
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
    control.state.seams = seams
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
