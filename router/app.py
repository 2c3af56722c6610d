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
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

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
from router.handler import Generation, Handler
from router.metrics import RouterMetrics
from router.retry import RetrySeam
from router.sensitivity.classifier import Classifier, build_classifier
from router.sensitivity.model import file_stamp
from router.steps import Steps
from router.upstreams.base import Pool
from router.upstreams.fallback import build_fallback
from router.upstreams.onprem import OnPremPool
from router.upstreams.sagemaker import SageMakerPool

log = logging.getLogger("edgepack.router.app")
T = TypeVar("T")


def build_steps(config: RouterConfig, metrics: RouterMetrics) -> Steps:
    """The resilience steps for this config: admission, retry, breaker, cache, drain."""
    return Steps(
        admission=AdmissionSeam(config.admission, pool_limits_for(config), metrics),
        retry=RetrySeam(config.retry, metrics),
        cache=CacheSeam(config.cache, metrics),
        outlier=BreakerSet(config.breaker, metrics),
        lifecycle=DrainState(config.drain),
    )


POOL_SECTIONS = ("onprem", "sagemaker", "fallback")  # config section = pool name


def build_pool(
    section: str, config: RouterConfig, metrics: RouterMetrics, steps: Steps
) -> Pool | None:
    if section == "onprem":
        return OnPremPool(
            config.onprem,
            metrics,
            steps.outlier,
            timeouts=config.timeouts,
            responses=config.responses,
        )
    if section == "sagemaker":
        if config.sagemaker is None:
            return None
        return SageMakerPool(config.sagemaker, metrics, responses=config.responses)
    return build_fallback(config, metrics, steps.outlier)


def build_pools(config: RouterConfig, metrics: RouterMetrics, steps: Steps) -> dict[str, Pool]:
    pools = {name: build_pool(name, config, metrics, steps) for name in POOL_SECTIONS}
    return {name: pool for name, pool in pools.items() if pool is not None}


def config_digest(config: RouterConfig) -> str:
    """The config's hash as /readyz reports it: equal on every worker that runs it."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


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
    digest: str | None = None,
) -> Starlette:
    """The app for `config`; tests pass their own metrics registry, classifier or pools.
    `digest`: the hash /readyz reports (default: `config`'s; a worker passes the hash of
    the whole config its share of the limits came from)."""
    metrics = metrics or RouterMetrics()
    steps = steps or build_steps(config, metrics)
    classifier = classifier or build_classifier(
        config.classifier, metrics, config.limits.max_body_bytes
    )
    pools = pools if pools is not None else build_pools(config, metrics, steps)
    handler = Handler(config, classifier, pools, steps, metrics, digest or config_digest(config))
    reloads = Reloads()
    metrics.watch(metrics.confidential_route_usable, lambda: _usable(handler.pools.get("onprem")))
    metrics.watch(metrics.score_cache_entries, lambda: len(handler.classifier.score_cache))

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
            await reloads.close_all(handler.live)
            logs.REQUESTS.flush()
            if hasattr(steps.cache, "close"):
                await steps.cache.close()

    async def classify(request: Request) -> Response:
        gen = handler.live
        try:
            texts, headers = await _classify_input(request, gen.config.limits.max_body_bytes)
        except RouterError as err:
            return respond.error_response(err)
        decision = await gen.classifier.classify(texts, headers)
        return JSONResponse(decision.as_json())

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        gen = handler.live
        routes = {name: pool.usable() for name, pool in gen.pools.items()}
        ok = gen.classifier.ready and any(routes.values()) and not steps.lifecycle.draining
        body = {
            "ready": ok,
            "classifier": gen.classifier.ready,
            "routes": routes,
            "draining": steps.lifecycle.draining,
            "config": gen.digest,
            "generation": reloads.generation,
            "pid": os.getpid(),
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
    control.state.steps = steps
    control.state.metrics = metrics
    control.state.reloads = reloads
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


class ReloadRefused(Exception):
    """A new config that cannot be put in force as a whole; the message is one line that
    names the section. Nothing of it took effect."""


RESTART_ONLY = (
    "listen",  # the socket and the processes
    "timeouts.client_header_s",  # the server's protocol reads these three at start
    "timeouts.client_body_idle_s",
    "timeouts.client_body_s",
)
"""Sections (or single settings) only a restart changes; a reload that changes one is
refused whole."""
POOL_SETTINGS = ("timeouts", "responses")  # sections every pool is built with


def restart_only_change(old: RouterConfig, new: RouterConfig) -> str | None:
    """The first setting that differs where a reload cannot change it, e.g. `listen.port`."""
    for entry in RESTART_ONLY:
        section, _, field = entry.partition(".")
        before, after = getattr(old, section), getattr(new, section)
        for name in [field] if field else type(before).model_fields:
            if getattr(before, name) != getattr(after, name):
                return f"{section}.{name}"
    return None


def changed_pools(old: RouterConfig, new: RouterConfig) -> list[str]:
    """Pools to rebuild: their own section changed, or a setting every pool is built with."""
    if any(getattr(old, s) != getattr(new, s) for s in POOL_SETTINGS):
        return list(POOL_SECTIONS)
    return [name for name in POOL_SECTIONS if getattr(old, name) != getattr(new, name)]


def refuse_restart_only(old: RouterConfig, new: RouterConfig) -> None:
    changed = restart_only_change(old, new)
    if changed is not None:
        raise ReloadRefused(f"{changed}: cannot change at run time (restart the router)")


async def apply_config(app: RouterApp, config: RouterConfig, digest: str | None = None) -> None:
    """Put `config` in force as a whole, or raise ReloadRefused and change nothing.

    Everything that can fail is made first, off the request path: the classifier (its
    model loaded in a thread, when the section or the model's files changed) and the pools
    of the sections that changed, started, their upstreams' health carried over. Then one
    synchronous swap: requests from here on use the new generation; those in flight keep
    theirs. A replaced pool or classifier closes when the last request of every
    generation that used it ends. The steps keep their state (breakers, budgets, slots)
    under the new settings.
    """
    handler: Handler = app.state.handler
    old = handler.live
    refuse_restart_only(old.config, config)
    metrics, steps = app.state.metrics, app.state.steps
    classifier = old.classifier
    if _classifier_changed(old, config):
        classifier = await in_thread(
            build_classifier, config.classifier, metrics, config.limits.max_body_bytes
        )
        if classifier.model_error is not None:
            classifier.close()
            raise ReloadRefused(f"classifier.model: {classifier.model_error}")
    changed = changed_pools(old.config, config)
    fresh: dict[str, Pool | None] = {}
    section = ""
    try:
        for section in changed:
            fresh[section] = pool = build_pool(section, config, metrics, steps)
            if pool is not None:
                carry_over(old.pools.get(section), pool)
                await pool.start()
    except Exception as exc:  # nothing of the new config is in force yet
        for pool in fresh.values():
            if pool is not None:
                await pool.close()
        if classifier is not old.classifier:
            classifier.close()
        raise ReloadRefused(f"{section}: {exc}") from None
    pools = {k: v for k, v in old.pools.items() if k not in fresh}
    pools.update({k: v for k, v in fresh.items() if v is not None})
    reconfigure(steps, config)
    logs.set_level(config.logging.level)
    handler.live = Generation(config, classifier, pools, digest or config_digest(config))
    app.state.reloads.retire(old, handler)


def _classifier_changed(old: Generation, new: RouterConfig) -> bool:
    """The section or the scan budget (from limits.max_body_bytes) differs, or the model's
    files changed on disk since they were loaded."""
    model = new.classifier.model
    scan_changed = old.config.limits.max_body_bytes != new.limits.max_body_bytes
    return (
        scan_changed
        or old.config.classifier != new.classifier
        or (model is not None and old.classifier.stamp != file_stamp(model))
    )


def carry_over(old: Pool | None, new: Pool) -> None:
    """Health of the upstreams in both pools (same name and address) goes on in the new one."""
    inherit = getattr(new, "inherit", None)
    if old is not None and inherit is not None:
        inherit(old)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a thread of its own that ends with it (a reload must not leave a
    pool thread behind, nor hold up the requests)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, result, None)

    threading.Thread(target=run, name="reload", daemon=True).start()
    return await done


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class Reloads:
    """The generations replaced by reloads whose requests still run, and what they hold."""

    def __init__(self) -> None:
        self.generation = 0
        self.retired: set[Generation] = set()
        self.handler: Handler | None = None

    def retire(self, old: Generation, handler: Handler) -> None:
        self.generation += 1
        self.handler = handler
        self.retired.add(old)
        old.on_idle = self._idle
        if not old.in_flight:
            self._idle(old)

    def _idle(self, gen: Generation) -> None:
        """`gen`'s last request ended: close what no other generation still uses."""
        self.retired.discard(gen)
        assert self.handler is not None
        used = [self.handler.live, *self.retired]
        pools = [p for p in gen.pools.values() if not any(p in g.pools.values() for g in used)]
        if all(gen.classifier is not g.classifier for g in used):
            gen.classifier.close()
        if pools:
            _background(_close(pools))

    async def close_all(self, live: Generation) -> None:
        """Shutdown: every pool and classifier of every generation."""
        gens = [live, *self.retired]
        pools = {id(p): p for g in gens for p in g.pools.values()}
        await _close(list(pools.values()))
        for classifier in {id(g.classifier): g.classifier for g in gens}.values():
            classifier.close()


async def _close(pools: list[Pool]) -> None:
    for pool in pools:
        await pool.close()


_BACKGROUND: set[asyncio.Task] = set()


def _background(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
