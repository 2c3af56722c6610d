"""The router process: uvicorn with uvloop + httptools (chosen by measurement, see
benchmarks/router/README.md; one write per answer, router/http_protocol.py), JSON logs and
no access log (the router logs each request); its signals and the config reload.

Why its own signal handling: a rolling update must not cut requests. On SIGTERM the router
turns unready at once (router/drain.py) and lets the requests in flight finish; when the
grace period ends (one period from the signal, streams included) what still runs is cut
(a stream ends broken, the rest get 503) and the process exits 0 at once. uvicorn's own
handler stops listening immediately and re-raises the signal on exit (a non-zero status),
so the server here installs its own.
SIGHUP reloads the config as a whole (router/app.py `apply_config`, off the request path)
or not at all: a bad one is rejected with one log line naming the section and the old one
stays; requests in flight keep the generation they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import signal
import socket
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import uvicorn

from router import logs
from router.app import apply_config, build_app, config_digest
from router.config import RouterConfig, load_config
from router.drain import DrainMiddleware, DrainState
from router.errors import UserError
from router.http_protocol import HttpProtocol
from router.respond import refusal_counter
from router.sensitivity.classifier import model_problem
from router.workers import DRAIN, REJECTED, RELOAD, SERVING, share, staged_config, supervise

log = logging.getLogger("edgepack.router.drain")
EXIT_AFTER_CUT_S = 0.5  # the cut requests end at once; this bounds the wait for them


def serve(
    config: RouterConfig,
    host: str | None = None,
    port: int | None = None,
    config_path: Path | None = None,
) -> None:
    """Serve until SIGTERM has drained the requests in flight (exit 0);
    SIGHUP reloads `config_path`, keeping the old config if the new one is bad. With
    `listen.workers` > 1, a supervisor runs that many (router/workers.py)."""
    logs.setup(config.logging.level)
    host = host or config.listen.host
    port = port if port is not None else config.listen.port
    options = {
        "loop": "uvloop",
        "http": HttpProtocol,
        "access_log": False,
        "proxy_headers": False,  # a sidecar on the pod's loopback: no forwarded-for to trust
        "server_header": False,
        "log_config": logs.uvicorn_log_config(config.logging.level),
    }
    sock = bind(host, port, config_path)
    workers = config.listen.workers
    if workers == 1:
        run_router(config, config_path, host, port, sock=sock, **options)
        return

    def worker(
        sock: socket.socket, control: int, serving: int, current: RouterConfig, strict: bool
    ) -> int:
        return run_router(
            current, config_path, host, port, workers=workers, sock=sock, control=control,
            serving=serving, load=staged_config, strict=strict, **options,
        )  # fmt: skip

    def load() -> RouterConfig:
        return load_config(config_path) if config_path is not None else config

    status = supervise(workers, sock, worker, config, load, lambda c: model_problem(c.classifier))
    if status:
        raise SystemExit(status)


def bind(host: str, port: int, config_path: Path | None) -> socket.socket:
    """The listening socket, bound before anything starts: a taken port is one line
    naming the setting (exit 2), and every worker accepts on this one socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        where = f"{config_path}: " if config_path else ""
        raise UserError(f"{where}listen: cannot bind {host}:{port}: {err.strerror}") from None
    sock.listen(2048)
    return sock


class Reloader:
    """SIGHUP: `load` the new config and `apply` it (all of it, or raise and change
    nothing); on error keep the old. One reload at a time: signals during one make one
    more after it. `apply` may be async and may return the config's hash, logged."""

    def __init__(
        self,
        load: Callable[[], Any],
        apply: Callable[[Any], Any],
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self.load = load
        self.apply = apply
        self.on_result = on_result
        self.generation = 0
        self.last_error: str | None = None
        self._running: asyncio.Task | None = None
        self._again = False

    def request(self) -> None:
        """The signal's handler: reload now, or after the reload in progress."""
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.get_running_loop().create_task(self._reload_until_settled())

    async def _reload_until_settled(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await self.reload()

    async def reload(self) -> bool:
        try:
            new = self.load()
            applied = self.apply(new)
            if inspect.isawaitable(applied):
                applied = await applied
        except Exception as exc:  # bad config: reject, keep serving with the old one
            self.rejected(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return False
        self.generation += 1
        self.last_error = None
        fields = {"generation": self.generation}
        if isinstance(applied, str):
            fields["config"] = applied
        log.info("config reloaded", extra={"fields": fields})
        self._report(True)
        return True

    def rejected(self, why: str | None = None) -> None:
        """A rejected reload; `why` None: the supervisor rejected it and said why."""
        if why is not None:
            self.last_error = why
            log.error("config reload rejected, keeping the old config: %s", why)
        self._report(False)

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

    class DrainingServer(uvicorn.Server):
        _signalled = False

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            loop = asyncio.get_running_loop()
            installed = []
            handlers = {signal.SIGTERM: self._on_signal, signal.SIGINT: self._on_signal}
            if reloader is not None:
                handlers[signal.SIGHUP] = reloader.request
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
            """The supervisor's word: drain (or its pipe closed: it is gone), reload (the
            config it staged), a reload it rejected (counted here)."""
            message = os.read(control, 64)
            if not message:
                asyncio.get_running_loop().remove_reader(control)
            if reloader is not None:
                for _ in range(message.count(RELOAD)):
                    reloader.request()
                for _ in range(message.count(REJECTED)):
                    reloader.rejected()
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
            """One grace period from the signal to the exit: then what still runs is cut,
            and uvicorn's own graceful shutdown has nothing left to wait for."""
            if not await state.wait_drained():
                cut = state.cut()
                log.warning("grace period over: %d request(s) in flight end as errors", cut)
                await state.wait_idle(EXIT_AFTER_CUT_S)
            self.should_exit = True

    config = uvicorn.Config(
        DrainMiddleware(app, state), host=host, port=port, log_level=log_level,
        timeout_graceful_shutdown=EXIT_AFTER_CUT_S, **uvicorn_kwargs,
    )  # fmt: skip
    return DrainingServer(config)


def quiet_gc() -> None:
    """Move everything loaded so far out of the collector's sight: the modules, config and
    detectors live as long as the process, and re-scanning them in every full collection
    costs more per request than the routing itself (docs/decisions/002-gc-freeze.md)."""
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
    load: Callable[[], Any] | None = None,
    strict: bool = False,
    **uvicorn_kwargs: Any,
) -> int:
    """Serve the router app: SIGTERM drains, SIGHUP reloads `config_path` (validated first;
    a worker `load`s the config its supervisor staged instead). As one of `workers`
    (router/workers.py): on the supervisor's `sock`, told what to do over `control`,
    saying on `serving` that it serves, with its share of the limits. `strict`: exit (1)
    before serving unless the whole config loaded, its model included."""
    app = build_app(share(config, workers), digest=config_digest(config))
    if strict and not app.state.handler.classifier.ready:
        log.error("worker not started: its config did not load whole")
        return 1
    quiet_gc()
    state = app.state.steps.lifecycle
    metrics = app.state.metrics
    if not isinstance(state, DrainState):
        state = DrainState(config.drain)

    def load_new() -> Any:
        return load() if load is not None else load_config(config_path)

    async def apply(new: Any) -> str:
        digest = config_digest(new)
        await apply_config(app, share(new, workers), digest)
        return digest

    def counted(ok: bool) -> None:
        metrics.config_reloads.labels("ok" if ok else "rejected").inc()

    reloader = Reloader(load_new, apply, counted)
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
