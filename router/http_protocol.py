"""The router's HTTP/1.1 server protocol: a lean stand-in for uvicorn's httptools protocol.

Why: uvicorn's httptools protocol costs several times what a bare asyncio Protocol needs per
request (docs/decisions/004-router-measured-choices.md). It keeps what a sidecar on loopback
needs, with as few operations per request as it can: httptools parses; one task per request
runs the ASGI app, started when the headers are complete; a body that has arrived is handed
over in one `receive()`; the status line, headers and a whole body leave in one write; a
body of unknown length is sent chunked. Keep-alive, pipelined requests (answered in order),
`Expect: 100-continue`, HEAD, write flow control and client disconnects (`http.disconnect`)
behave as in ASGI servers. An idle connection is closed after `timeout_keep_alive` by one
lazily re-armed timer per connection, not a timer per request.

The same timer bounds the client's reads (`bounded()` sets them from the config's
`timeouts`): a head not complete `header_timeout_s` after its first byte is answered 408
and closed here; a body silent for `body_idle_timeout_s`, or not complete
`body_timeout_s` after its head, or with broken chunked framing, is refused to the app
instead: its `receive()` gives `http.disconnect` carrying `(status, reason)` under
`REFUSED`, so the app answers (router/asgi.py `read_body`: 408 or 400) and counts it; the
connection closes after that answer. Refusals made here (400, 408, 431) are counted by
`on_refusal`.

It serves the router's own app, which follows the ASGI spec (lower-case header names, no
CR/LF in values: its headers come from its code, or from upstream answers that a parser has
already split), so response headers are not re-validated. Left out: WebSocket upgrades,
HTTP/2 and uvicorn's `limit_concurrency`/`limit_max_requests` (admission control is the
router's own, router/admission.py). It plugs into `uvicorn.Server` (`http=HttpProtocol`),
which keeps the lifespan, listening sockets, signals and graceful shutdown (router/drain.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from router.asgi import DECODED_HEADERS, REFUSED
from router.config import TimeoutsConfig

log = logging.getLogger("edgepack.router.http")

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; beyond: 431
BODY_HIGH_WATER = 64 * 1024  # unread request body that pauses reading from the socket
STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
NO_BODY_STATUS = frozenset({204, 304})
FRAMING = frozenset({b"content-length", b"transfer-encoding"})
ASGI = {"version": "3.0", "spec_version": "2.3"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
RUNNING: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks
_NAMES: dict[bytes, tuple[bytes, str]] = {}  # header name as sent → lower-cased bytes, str


def _name(name: bytes) -> tuple[bytes, str]:
    lower = name.lower()
    pair = lower, lower.decode("latin-1")
    if len(_NAMES) < 256:  # clients send a handful of names; a hostile one cannot grow it
        _NAMES[name] = pair
    return pair


def _base_scope(server: Any, client: Any) -> dict[str, Any]:
    """A connection's scope, in ASGI's key order; `_scope` fills in each request's parts."""
    return {
        "type": "http",
        "asgi": ASGI,
        "http_version": "1.1",
        "server": server,
        "client": client,
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [],
        DECODED_HEADERS: {},
    }


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_TARGETS: dict[bytes, tuple[bytes, bytes, str]] = {}  # plain paths → raw path, query, path


def _target(url: bytes) -> tuple[bytes, bytes, str]:
    """The request target as ASGI's raw_path, query_string and path. A plain path ("/..."
    without "?" or "%") is kept (at most 64): clients ask for the same few paths, and a
    lookup costs less than these checks and a decode."""
    if 63 in url or 37 in url or url[:1] != b"/":  # "?", "%" or not "/...": the long way
        parsed = httptools.parse_url(url)
        raw_path = parsed.path or b"/"
        return raw_path, parsed.query or b"", unquote(raw_path.decode("latin-1"))
    target = url, b"", url.decode("latin-1")
    if len(_TARGETS) < 64:
        _TARGETS[url] = target
    return target


def plain_response(status: int, text: str) -> bytes:
    """A complete `connection: close` answer the protocol gives itself (400, 431, 500)."""
    body = text.encode()
    return b"".join([
        STATUS_LINES[status],
        b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n",
        b"content-length: %d\r\n\r\n" % len(body),
        body,
    ])  # fmt: skip


class HeadTooLarge(Exception):
    pass


class HttpProtocol(asyncio.Protocol):
    """One client connection. The constructor's signature is the one uvicorn.Server calls."""

    header_timeout_s = TimeoutsConfig().client_header_s
    body_idle_timeout_s = TimeoutsConfig().client_body_idle_s
    body_timeout_s = TimeoutsConfig().client_body_s
    on_refusal: Callable[[int, str], None] | None = None  # counts a refusal made here

    @classmethod
    def bounded(
        cls, timeouts: TimeoutsConfig, on_refusal: Callable[[int, str], None] | None = None
    ) -> type[HttpProtocol]:
        """This protocol with the config's client timeouts and a refusal counter (uvicorn
        builds the protocol from a class, so the settings travel as class attributes)."""
        settings = {
            "header_timeout_s": timeouts.client_header_s,
            "body_idle_timeout_s": timeouts.client_body_idle_s,
            "body_timeout_s": timeouts.client_body_s,
            "on_refusal": staticmethod(on_refusal) if on_refusal else None,
        }
        return type(cls.__name__, (cls,), settings)

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.keep_alive_s = float(config.timeout_keep_alive)
        self.server_state = server_state
        self.app_state = app_state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.base_scope = _base_scope(None, None)
        self.parsing: Exchange | None = None  # the request the parser is reading
        self.active: Exchange | None = None  # the request being answered
        self.queue: deque[Exchange] = deque()  # pipelined requests waiting their turn
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.decoded: dict[str, str] = {}
        self.in_head = False
        self.head_bytes = 0  # head bytes of earlier reads, while the head is incomplete
        self.last_read = b""
        self.expect_continue = False
        self.last_data = 0.0  # when bytes last came (or, answering, when last checked)
        self.head_started = 0.0  # first byte of the head being read
        self.body_started = 0.0  # end of the head whose body is being read
        self.refused = False  # a body was refused: the rest of the input is dropped
        self.idle_timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.read_paused = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future] = []
        self.default_list: object = None  # uvicorn's date/server headers, and joined:
        self.default_bytes = b""

    # connection events
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.server_state.connections.add(self)
        self.base_scope = _base_scope(
            transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        )
        self.last_data = self.loop.time()
        self._arm_timer(self.last_data + self.keep_alive_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        for exchange in (self.active, self.parsing, *self.queue):
            if exchange is not None:
                exchange.disconnected = True
                exchange.wake()
        self.queue.clear()
        self._wake_writers()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.last_data = self.loop.time()
        self.last_read = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # no upgrades here: answer it as plain HTTP/1.1
            if self.parsing is not None:
                self.parsing.keep_alive = False
                self.on_message_complete()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse(431, "request header fields too large")
            elif self.parsing is not None:  # the head was good: the body's framing is not
                self._refuse_body(self.parsing, 400, "malformed request body framing")
            else:
                self._refuse(400, "invalid HTTP request")
            return
        if self.in_head:  # headers still incomplete after this read
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "request header fields too large")
        elif self.parsing is not None:  # a body still coming: its deadline may be sooner
            self._check_by(self._body_deadline())

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writers()

    def shutdown(self) -> None:
        """uvicorn.Server's graceful shutdown: close now if idle, else after this answer."""
        if self.active is None and self.parsing is None:
            self.transport.close()
            return
        for exchange in (self.active, self.parsing):
            if exchange is not None:
                exchange.keep_alive = False
        self.queue.clear()

    # parser callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.decoded = {}
        self.in_head = True
        self.head_bytes = 0
        self.head_started = self.last_data
        due = self.last_data + self.header_timeout_s
        if due < self.timer_at:  # only with a header timeout below the keep-alive one
            self._check_by(due)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """ASGI's lower-cased byte pairs, and the same headers decoded for the router's own
        handler (`router.asgi.header_dict`), a repeated one keeping its last value: one
        cached name and one decoded value here cost less than decoding both there."""
        name, key = _NAMES.get(name) or _name(name)
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        self.headers.append((name, value))
        self.decoded[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        """Checks the head's size only when the reads that carried it could exceed it."""
        self.in_head = False
        self.body_started = self.last_data
        if self.head_bytes + len(self.last_read) > MAX_HEAD_BYTES:
            size = len(self.url) + sum(len(k) + len(v) for k, v in self.headers)
            if size > MAX_HEAD_BYTES:
                raise HeadTooLarge
        parser = self.parser
        version = parser.get_http_version()
        exchange = Exchange(
            self, self._scope(version), version != "1.0" and parser.should_keep_alive()
        )
        if self.expect_continue:
            self.expect_continue = False
            exchange.expect_continue = True
        self.parsing = exchange
        if self.active is None:
            self._start(exchange)
        else:
            self.queue.append(exchange)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if exchange is None or exchange.finished:  # answered already: the rest is dropped
            return
        exchange.chunks.append(body)
        exchange.unread += len(body)
        if exchange.unread > BODY_HIGH_WATER:
            self._pause_reading()
        if exchange.waiter is not None:
            exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.parsing
        self.parsing = None
        if exchange is not None:
            exchange.complete = True
            if exchange.waiter is not None:
                exchange.wake()

    # helpers
    def _scope(self, version: str) -> dict[str, Any]:
        """The connection's scope with this request's parts: a copy and a few stores cost
        less than a 13-key dict built afresh."""
        raw_path, query, path = _TARGETS.get(self.url) or _target(self.url)
        method = self.parser.get_method()
        scope = self.base_scope.copy()
        scope["http_version"] = version
        scope["method"] = _METHODS.get(method) or method.decode("ascii")
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = self.headers
        scope[DECODED_HEADERS] = self.decoded
        if self.app_state:
            scope["state"] = self.app_state.copy()
        return scope

    def _start(self, exchange: Exchange) -> None:
        """Run the app for `exchange`. Its task is not put in uvicorn's task set: graceful
        shutdown waits for the connection, which closes after the answer."""
        self.active = exchange
        exchange.task = task = self.loop.create_task(exchange.run(self.app))
        RUNNING.add(task)

    def answered(self, exchange: Exchange) -> None:
        """`exchange`'s last byte is written: close, or go on with the next request."""
        self.active = None
        if not exchange.keep_alive:
            self.transport.close()
            return
        if self.queue:
            self._start(self.queue.popleft())
        if self.read_paused:  # also after an answer given before its whole request came
            self._resume_reading()
        self.last_data = self.loop.time()

    def default_headers(self) -> bytes:
        """uvicorn.Server's date/server headers, re-joined only when its list changes."""
        current = self.server_state.default_headers
        if current is not self.default_list:
            self.default_list = current
            self.default_bytes = b"".join(k + b": " + v + b"\r\n" for k, v in current)
        return self.default_bytes

    def _refuse(self, status: int, text: str) -> None:
        """Answer `status` and close: a request whose head cannot be served."""
        if self.on_refusal is not None:
            self.on_refusal(status, text)
        else:
            log.info("refused a request: %s", text)
        if self.active is None:  # an answer in progress must not be interleaved
            self.transport.write(plain_response(status, text))
        self.transport.close()

    def _refuse_body(self, exchange: Exchange, status: int, text: str) -> None:
        """A body that cannot be read on: the app is told (its `receive()`) and answers;
        nothing more is read from this connection."""
        self.refused = True
        self.parsing = None
        self._pause_reading()
        exchange.keep_alive = False
        exchange.refusal = (status, text)
        if exchange.finished:  # answered already: nobody to tell
            self.transport.close()
        exchange.wake()

    def _arm_timer(self, when: float) -> None:
        self.idle_timer = self.loop.call_at(when, self._idle_check)
        self.timer_at = when

    def _check_by(self, when: float) -> None:
        """Make the timer fire by `when` (a head's or a body's deadline)."""
        if when < self.timer_at:
            if self.idle_timer is not None:
                self.idle_timer.cancel()
            self._arm_timer(when)

    def _body_deadline(self) -> float:
        return min(
            self.last_data + self.body_idle_timeout_s, self.body_started + self.body_timeout_s
        )

    def _idle_check(self) -> None:
        """The connection's one timer: a head or a body past its deadline is refused (408),
        a connection silent for `timeout_keep_alive` with no answer being made is closed;
        otherwise look again when something could be due."""
        self.idle_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.in_head and self.active is None:
            due = self.head_started + self.header_timeout_s
            if now >= due:
                self._refuse(408, "request head timeout")
                return
        elif self.parsing is not None and not self.read_paused:  # paused: the app is behind
            due = self._body_deadline()
            if now >= due:
                self._refuse_body(self.parsing, 408, "request body timeout")
                due = now + self.keep_alive_s
        elif self.active is not None:
            self.last_data = now
            due = now + self.keep_alive_s
        else:
            due = self.last_data + self.keep_alive_s
            if now >= due:
                self.transport.close()
                return
        self._arm_timer(due)

    def _pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.queue:
            self.read_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        waiter = self.loop.create_future()
        self.drain_waiters.append(waiter)
        await waiter

    def _wake_writers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Exchange:
    """One request and its answer: the ASGI `receive` and `send` of one task. Attributes
    most requests never change are class defaults, so a request sets only four."""

    unread = 0  # request body bytes the app has not received yet
    complete = False  # the whole request body is here
    body_given = False
    expect_continue = False
    waiter: asyncio.Future | None = None  # receive() waiting for body or disconnect
    disconnected = False
    started = False  # http.response.start seen
    head_sent = False
    chunked = False
    silent = False  # HEAD, 204, 304: headers only
    finished = False  # the last body byte is written
    status = 200
    headers: Any = ()
    task: asyncio.Task | None = None
    refusal: tuple[int, str] | None = None  # the body was refused: (status, reason)

    def __init__(self, proto: HttpProtocol, scope: dict[str, Any], keep_alive: bool) -> None:
        self.proto = proto
        self.scope = scope
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # as uvicorn does: answer 500, or cut the connection
            log.error("exception in the ASGI application", exc_info=exc)
            self._abort()
        else:
            if not self.finished and not self.disconnected:
                log.error("the ASGI application returned without a complete answer")
                self._abort()
        finally:
            RUNNING.discard(self.task)  # type: ignore[arg-type]

    def _abort(self) -> None:
        """500 (or the body's refusal) if nothing was sent yet, then close: a half-sent
        answer cannot be mended."""
        if self.finished or self.disconnected:
            return
        self.finished = True
        if not self.head_sent:
            status, text = self.refusal or (500, "Internal Server Error")
            self.proto.transport.write(plain_response(status, text))
        self.proto.transport.close()

    async def receive(self) -> dict[str, Any]:
        if self.complete and not self.body_given:  # the usual case: the body is all here
            self.body_given = True
            chunks = self.chunks
            if self.proto.read_paused:
                self.proto._resume_reading()
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            return {"type": "http.request", "body": body, "more_body": False}
        return await self._receive_slowly()

    async def _receive_slowly(self) -> dict[str, Any]:
        """Body pieces as they arrive; after the body, wait for the client to go away."""
        while not self.disconnected and not self.finished:
            if self.refusal is not None:
                return {"type": "http.disconnect", REFUSED: self.refusal}
            if self.chunks or (self.complete and not self.body_given):
                chunks, self.chunks = self.chunks, []
                self.unread = 0
                self.body_given = self.complete
                self.proto._resume_reading()
                body = b"".join(chunks)
                return {"type": "http.request", "body": body, "more_body": not self.complete}
            if self.expect_continue:
                self.expect_continue = False
                self.proto.transport.write(CONTINUE)
            self.waiter = self.proto.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        proto = self.proto
        if proto.write_paused and not self.disconnected:
            await proto.drain()
        if self.disconnected:
            return
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {message['type']!r}")
            self.started = True
            self.expect_continue = False
            self.status = message["status"]
            self.headers = message.get("headers", ())
            return  # the head leaves with the first body bytes
        if self.finished or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {message['type']!r} for this answer")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.head_sent:
            if self.chunked:
                body = self._chunk(body, more)
            elif self.silent:
                body = b""
        else:
            body = self._head(body, more)
        if body:
            proto.transport.write(body)
        if not more:
            self.finished = True
            if self.waiter is not None:
                self.wake()
            proto.answered(self)

    def _head(self, body: bytes, more: bool) -> bytes:
        """Status line, headers and the first body bytes, framed: the app's content-length,
        else the body's length if it is the whole body, else chunked."""
        self.head_sent = True
        status = self.status
        parts = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        parts.append(self.proto.default_headers())
        framed = no_body = status in NO_BODY_STATUS or status < 200
        said_close = False
        for name, value in self.headers:
            if name in FRAMING:
                framed = True
            elif name == b"connection" and value.lower() == b"close":
                self.keep_alive, said_close = False, True
            parts += (name, b": ", value, b"\r\n")
        if not framed:
            if not more:
                parts.append(b"content-length: %d\r\n" % len(body))
            elif self.scope["http_version"] == "1.1":
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0: the close ends the body
        if not self.keep_alive and not said_close:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if no_body or self.scope["method"] == "HEAD":
            self.chunked, self.silent = False, True
        elif self.chunked:
            parts.append(self._chunk(body, more))
        else:
            parts.append(body)
        return b"".join(parts)

    def _chunk(self, body: bytes, more: bool) -> bytes:
        framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
        return framed if more else framed + b"0\r\n\r\n"
