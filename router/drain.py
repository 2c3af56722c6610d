"""Graceful drain on SIGTERM and config reload on SIGHUP.

Why: a rolling update must not cut requests. On SIGTERM the router turns unready at once
(so the load balancer stops sending), answers new requests 503 + Retry-After, lets the
requests in flight finish within the grace period, then exits 0. uvicorn's own handler
stops listening immediately and re-raises the signal on exit (a non-zero status), so
the server here installs its own. SIGHUP reloads the config: the new one is validated
first, a bad one is rejected with one log line and the old one stays; requests in
flight keep the objects they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Generator
from typing import Any

from router.config import DrainConfig
from router.workers import DRAIN, RELOAD, SERVING, share

log = logging.getLogger("edgepack.router.drain")

# Paths that keep answering while draining: probes and metrics.
EXEMPT_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class DrainState:
    """Readiness and in-flight count of this process, shared by the app and the server."""

    def __init__(self, cfg: DrainConfig | None = None) -> None:
        self.cfg = cfg or DrainConfig()
        self.draining = False
        self.drain_started: float | None = None
        self.in_flight = 0
        self.on_drain: Callable[[], None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return not self.draining

    def begin_drain(self) -> None:
        """Flip readiness first; everything else follows from `draining`."""
        if not self.draining:
            self.draining = True
            self.drain_started = time.monotonic()
            log.info("draining: %d request(s) in flight", self.in_flight)
            if self.on_drain is not None:
                self.on_drain()

    def enter(self) -> None:
        if not self.in_flight:  # only the first one in makes the router busy
            self._idle.clear()
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_drained(self) -> bool:
        """Wait until nothing is in flight (and linger passed) or the grace period ends.
        True if everything finished."""
        started = self.drain_started or time.monotonic()
        deadline = started + self.cfg.grace_period_s
        try:
            await asyncio.wait_for(self._idle.wait(), max(deadline - time.monotonic(), 0))
            finished = True
        except TimeoutError:
            finished = self.in_flight == 0
        linger = started + min(self.cfg.linger_s, self.cfg.grace_period_s) - time.monotonic()
        if linger > 0:
            await asyncio.sleep(linger)
        return finished


class DrainMiddleware:
    """ASGI middleware: counts HTTP requests in flight; refuses new ones while draining."""

    def __init__(self, app: Any, state: DrainState, exempt: frozenset[str] = EXEMPT_PATHS):
        self.app = app
        self.state = state
        self.exempt = exempt

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.state.draining:
            await _refuse(send, self.state.cfg.retry_after_s)
            return
        self.state.enter()  # not `with track()`: this runs on every request
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.leave()


async def _refuse(send: Any, retry_after: int) -> None:
    body = b'{"error":{"message":"router is draining","type":"unavailable"}}'
    await send({
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"retry-after", str(retry_after).encode()),
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode()),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Reloader:
    """SIGHUP: build a new config with `load`, hand it to `apply`; on error keep the old."""

    def __init__(
        self,
        load: Callable[[], Any],
        apply: Callable[[Any], None],
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self.load = load
        self.apply = apply
        self.on_result = on_result
        self.generation = 0
        self.last_error: str | None = None

    def reload(self) -> bool:
        try:
            new = self.load()
        except Exception as exc:  # bad config: reject, keep serving with the old one
            self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("config reload rejected, keeping the old config: %s", self.last_error)
            self._report(False)
            return False
        self.apply(new)
        self.generation += 1
        self.last_error = None
        log.info("config reloaded (generation %d)", self.generation)
        self._report(True)
        return True

    def _report(self, ok: bool) -> None:
        if self.on_result is not None:
            self.on_result(ok)


def make_server(
    app: Any,
    host: str,
    port: int,
    state: DrainState,
    reloader: Reloader | None = None,
    log_level: str | None = None,
    control: int | None = None,
    serving: int | None = None,
    **uvicorn_kwargs: Any,
) -> Any:
    """A uvicorn server whose SIGTERM drains and whose SIGHUP reloads; a worker's
    supervisor says the same over the `control` pipe and hears on `serving` that it
    started (router/workers.py)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        _signalled = False

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            loop = asyncio.get_running_loop()
            installed = []
            handlers = {signal.SIGTERM: self._on_signal, signal.SIGINT: self._on_signal}
            if reloader is not None:
                handlers[signal.SIGHUP] = reloader.reload
            for sig, fn in handlers.items():
                loop.add_signal_handler(sig, fn)
                installed.append(sig)
            if control is not None:
                loop.add_reader(control, self._on_control)
            try:
                yield
            finally:
                for sig in installed:
                    loop.remove_signal_handler(sig)
                if control is not None:
                    loop.remove_reader(control)

        def _on_control(self) -> None:
            """The supervisor's word: drain (or its pipe closed: it is gone), reload."""
            message = os.read(control, 64)
            if not message:
                asyncio.get_running_loop().remove_reader(control)
            if RELOAD in message and reloader is not None:
                reloader.reload()
            if DRAIN in message or not message:
                self._drain()

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if serving is not None and self.started:
                os.write(serving, SERVING)

        def _on_signal(self) -> None:
            """The first SIGTERM/SIGINT drains, a second one stops now. A drain the
            supervisor asked for first does not make the signal a second one: a signal
            to the whole process group reaches the worker both ways."""
            if self._signalled:
                self.force_exit = True
                self.should_exit = True
                return
            self._signalled = True
            self._drain()

        def _drain(self) -> None:
            if not state.draining:
                state.begin_drain()
                self._drain_task = asyncio.get_running_loop().create_task(self._finish())

        async def _finish(self) -> None:
            finished = await state.wait_drained()
            if not finished:
                log.warning("grace period over with %d request(s) in flight", state.in_flight)
            self.should_exit = True

    config = uvicorn.Config(
        DrainMiddleware(app, state), host=host, port=port, log_level=log_level,
        timeout_graceful_shutdown=max(state.cfg.grace_period_s, 1.0), **uvicorn_kwargs,
    )  # fmt: skip
    return DrainingServer(config)


def serve(app: Any, host: str, port: int, state: DrainState, **kw: Any) -> int:
    """Run until drained; the exit status is 0 after a clean drain."""
    server = make_server(app, host, port, state, **kw)
    server.run()
    return 0


def apply_config(app: Any, config: Any) -> None:
    """Switch a running router app to `config` without dropping requests in flight.

    Requests already in flight keep the pools and settings they started with; the
    resilience steps keep their state (breakers, budgets, held slots) under the new
    settings. Pools whose section changed are rebuilt and started before the swap; the
    old ones are closed once no request can still be using them (after the deadline).
    The listen address and the classifier are not reloaded (they need a restart).
    """
    from router.app import build_pools
    from router.seams import reconfigure

    handler = app.state.handler
    old_config = handler.config
    seams = app.state.seams
    reconfigure(seams, config)
    changed = [
        name for name in ("onprem", "sagemaker", "fallback")
        if getattr(old_config, name) != getattr(config, name)
    ]  # fmt: skip
    handler.config = config
    if not changed:
        return
    fresh = build_pools(config, app.state.metrics, seams)
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


def quiet_gc() -> None:
    """Move everything loaded so far out of the collector's sight: the modules, config and
    detectors live as long as the process, and re-scanning them in every full collection
    costs more per request than the routing itself. Measured (benchmarks/router, c=16):
    GC time per request 40 → 16 µs, p99 64 → 20 ms."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 20, 20)


def run_router(
    config: Any,
    config_path: Any,
    host: str,
    port: int,
    *,
    workers: int = 1,
    sock: Any = None,
    control: int | None = None,
    serving: int | None = None,
    **uvicorn_kwargs: Any,
) -> int:
    """Serve the router app: SIGTERM drains, SIGHUP reloads `config_path` (validated first).
    As one of `workers` (router/workers.py): on the supervisor's `sock`, told what to do
    over `control`, saying on `serving` that it serves, with its share of the limits."""
    from router.app import build_app
    from router.config import load_config
    from router.respond import refusal_counter

    app = build_app(share(config, workers))
    quiet_gc()
    state = app.state.seams.lifecycle
    metrics = app.state.metrics
    if not isinstance(state, DrainState):
        state = DrainState(config.drain)

    def load() -> Any:
        return share(load_config(config_path), workers)

    def counted(ok: bool) -> None:
        metrics.config_reloads.labels("ok" if ok else "rejected").inc()

    reloader = Reloader(load, lambda new: apply_config(app, new), counted)
    if "http" in uvicorn_kwargs:  # the router's own protocol: the client timeouts, counted
        uvicorn_kwargs["http"] = uvicorn_kwargs["http"].bounded(
            config.timeouts, refusal_counter(metrics)
        )
    state.on_drain = lambda: metrics.draining.set(1)
    server = make_server(
        app, host, port, state, reloader, control=control, serving=serving, **uvicorn_kwargs
    )
    server.run(sockets=None if sock is None else [sock])
    return 0
