"""The router process: uvicorn with uvloop + httptools (chosen by measurement, see
benchmarks/router/README.md; one write per answer, router/http_protocol.py), JSON logs and
no access log (the router logs each request); its signals and the config reload.

Why its own signal handling: a rolling update must not cut requests. On SIGTERM the router
turns unready at once (router/drain.py), lets the requests in flight finish within the
grace period, then exits 0. uvicorn's own handler stops listening immediately and
re-raises the signal on exit (a non-zero status), so the server here installs its own.
SIGHUP reloads the config: the new one is validated first, a bad one is rejected with one
log line and the old one stays; requests in flight keep the objects they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import uvicorn

from pipeline.errors import UserError
from router import logs
from router.app import apply_config, build_app
from router.config import RouterConfig, load_config
from router.drain import DrainMiddleware, DrainState
from router.http_protocol import HttpProtocol
from router.workers import DRAIN, RELOAD, SERVING, share, supervise

log = logging.getLogger("edgepack.router.drain")


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

    def worker(sock: socket.socket, control: int, serving: int) -> int:
        return run_router(
            config, config_path, host, port,
            workers=workers, sock=sock, control=control, serving=serving, **options,
        )  # fmt: skip

    status = supervise(workers, sock, worker)
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
    **uvicorn_kwargs: Any,
) -> int:
    """Serve the router app: SIGTERM drains, SIGHUP reloads `config_path` (validated first).
    As one of `workers` (router/workers.py): on the supervisor's `sock`, told what to do
    over `control`, saying on `serving` that it serves, with its share of the limits."""
    app = build_app(share(config, workers))
    quiet_gc()
    state = app.state.steps.lifecycle
    metrics = app.state.metrics
    if not isinstance(state, DrainState):
        state = DrainState(config.drain)

    def load() -> Any:
        return share(load_config(config_path), workers)

    def counted(ok: bool) -> None:
        metrics.config_reloads.labels("ok" if ok else "rejected").inc()

    reloader = Reloader(load, lambda new: apply_config(app, new), counted)
    state.on_drain = lambda: metrics.draining.set(1)
    server = make_server(
        app, host, port, state, reloader, control=control, serving=serving, **uvicorn_kwargs
    )
    server.run(sockets=None if sock is None else [sock])
    return 0
