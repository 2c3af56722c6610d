"""Drain state and its middleware: once draining, the router is unready at once (so the
load balancer stops sending) and answers new requests 503 + Retry-After while the
requests in flight finish. What still runs when the grace period ends is `cut`: a stream
ends broken (router/asgi.py `end_broken`), any other request is answered 503; both are
logged with that status. The process side (signals, one grace period from SIGTERM to
exit 0) is in router/server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from router import logs
from router.asgi import CUT, CUT_STATUS, Cut
from router.config import DrainConfig

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
        self.running: dict[Cut, asyncio.Task | None] = {}  # the requests in flight
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

    @property
    def deadline(self) -> float:
        """When the grace period ends (time.monotonic), counted from the drain's start."""
        return (self.drain_started or time.monotonic()) + self.cfg.grace_period_s

    def cut(self) -> int:
        """End every request still in flight: streams end broken where they are, the rest
        are cancelled (the middleware answers them). How many there were."""
        for cut, task in list(self.running.items()):
            cut.fire()
            if not cut.streaming and task is not None:
                task.cancel()
        return len(self.running)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` for nothing to be in flight; True if so."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(timeout, 0))
        return self.in_flight == 0

    async def wait_drained(self) -> bool:
        """Wait until nothing is in flight (and linger passed) or the grace period ends.
        True if everything finished."""
        started = self.drain_started or time.monotonic()
        finished = await self.wait_idle(self.deadline - time.monotonic())
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
        state = self.state
        state.enter()  # not `with track()`: this runs on every request
        cut = scope[CUT] = Cut()
        state.running[cut] = asyncio.current_task()
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if not cut.done:
                raise
            await _cut_short(scope, send)  # the drain's cancellation: answered, not raised
        finally:
            del state.running[cut]
            state.leave()


async def _cut_short(scope: dict, send: Any) -> None:
    """A request (not a stream) still waiting for its answer when the grace period ended."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()
    logs.event("request cut", path=scope.get("path"), status=CUT_STATUS, why="grace period over")
    body = b'{"error":{"message":"router shut down before the answer","type":"unavailable"}}'
    with contextlib.suppress(Exception):  # a half-sent answer: the server cuts the connection
        await send({
            "type": "http.response.start",
            "status": CUT_STATUS,
            "headers": [
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})


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
