"""A small pooled HTTP/1.1 keep-alive client for the on-prem upstreams (asyncio + httptools).

Why hand-written: the router's whole budget is 250 µs CPU per request, aiohttp alone
spent more, and no well-kept library does a keep-alive POST at this cost; the measurements
are in docs/decisions/001-hand-written-http1-client.md.

Deadlines: a timer per request costs too much here, so each pool keeps one `call_at` timer
at the earliest deadline in flight; a request re-arms it only when its deadline is earlier
(the router's deadlines mostly grow), and when it fires it expires what is due and re-arms
for the next.

Bounds: besides the deadline, a response must start (its head) within
`first_byte_timeout_s` and a streamed one must not fall silent for `stream_idle_timeout_s`
(both move the same `deadline` the one timer watches); its head, a status outside
100–599, a whole body, a stream's chunk or its total past the caps in `limits` fail it
with `ResponseRefused`, and the connection is dropped.

What this keeps is what the router needs: one origin per pool, a bounded number of
connections reused newest-first, content-length request bodies, whole or streamed
(chunked decoded by httptools) response bodies, one deadline per request, and distinct
errors so the pool can map them to 502/504.

Safety rules: a connection is reused only after a complete response the server agreed to
keep alive, with nothing of our request left unsent; any parse error, early close or
deadline aborts it. Idle connections the server closed are dropped before reuse (their
`connection_lost` has run), and idle ones older than `idle_timeout_s` (below uvicorn's
default 5 s keep-alive, which OpenAI-protocol servers built on uvicorn close idle
connections at) are closed rather than risked.
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl as ssl_module
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools

from router.config import ResponsesConfig, TimeoutsConfig

IDLE_TIMEOUT_S = 4.0
STREAM_HIGH_WATER = 256 * 1024  # buffered stream bytes that pause reading from the socket
STREAM_LOW_WATER = 64 * 1024


class HttpError(Exception):
    """Base of the client's errors.

    `sent` is False only when no byte of the request left; `answered` is True once the
    response's head arrived (the failure hit the body).
    """

    sent = True
    answered = False


class ConnectError(HttpError):
    """No connection could be opened (refused, unreachable, name not found)."""

    sent = False


class ConnectTimeout(ConnectError):
    """Opening the connection took longer than the connect timeout (or the deadline)."""


class PoolTimeout(HttpError):
    """Every connection stayed busy until the deadline."""

    sent = False


class ReadTimeout(HttpError):
    """The deadline passed while waiting for the response (head or body)."""


class ConnectionLost(HttpError):
    """The connection closed before the response was complete."""


class ProtocolError(ConnectionLost):
    """The server sent something that is not a valid HTTP/1.1 response."""


class ResponseRefused(ProtocolError):
    """The response broke a bound: a head, body, chunk or stream over its cap, or a status
    outside 100–599."""


class Response:
    """One exchange: status and lower-cased headers; the body whole (`read`) or streamed.

    Iterate it (`async for chunk in response`) for the body as it arrives; `close()` when
    done early, which aborts the connection if the response is not complete.
    """

    __slots__ = (
        "_body", "_buffered", "_chunk", "_conn", "_error", "_headers", "_parts", "_paused",
        "_size", "_stream", "_waiter", "complete", "deadline", "final", "head_done", "interim",
        "raw_headers", "status",
    )  # fmt: skip

    def __init__(self, conn: _Connection, stream: bool, deadline: float, final: float) -> None:
        self.status = self._buffered = self._size = 0
        self._chunk = -1  # bytes of the chunked-encoding chunk being read; -1: none
        self.raw_headers: dict[str, bytes] = {}  # lower-cased name → value as sent
        self._headers: dict[str, str] | None = None
        self.complete = self.head_done = self.interim = self._paused = False
        self._conn: _Connection | None = conn
        self._stream = stream
        self._parts: collections.deque[bytes] | list[bytes] = collections.deque() if stream else []
        self._body: bytes | None = None
        self._error: HttpError | None = None
        self._waiter: asyncio.Future | None = None
        self.deadline = deadline  # loop.time() by which the next bytes must be here
        self.final = final  # loop.time() by which the response must be complete

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names, values decoded, a repeated header's values joined by ", ".
        Decoded when first asked for: the router reads only the content type, from
        `raw_headers`, and decoding every value as it arrived cost more."""
        headers = self._headers
        if headers is None:
            headers = {k: v.decode("latin-1") for k, v in self.raw_headers.items()}
            if self.head_done:
                self._headers = headers
        return headers

    @property
    def body(self) -> bytes | None:
        """The whole body if it is here (a response not streamed, once `request` returned),
        else None: `read()` it. Spares the caller a coroutine per request."""
        return self._body

    async def read(self) -> bytes:
        """The whole body (waits for the rest of it when the response was streamed)."""
        if self._body is not None:
            return self._body
        chunks = [chunk async for chunk in self]
        self._body = b"".join(chunks)
        return self._body

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        parts = self._parts
        while not parts:
            if self._error is not None:
                raise self._error
            if self.complete:
                raise StopAsyncIteration
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            except BaseException:
                self.close()
                raise
        chunk = parts.popleft() if self._stream else parts.pop(0)  # type: ignore[union-attr]
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= STREAM_LOW_WATER:
            self._paused = False
            conn = self._conn
            if conn is not None and not conn.closed:
                conn.transport.resume_reading()
                conn.pool._due_by(conn._stream_deadline(self))  # idle counts again
        return chunk

    def close(self) -> None:
        """Stop reading: an unfinished response takes its connection down with it."""
        if not self.complete:
            self._fail(ConnectionLost("response closed before its end"))

    # --- driven by the connection's parser -------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _on_body(self, body: bytes) -> None:
        self._parts.append(body)
        if self._stream:
            self._buffered += len(body)
            if not self._paused and self._buffered > STREAM_HIGH_WATER and self._conn:
                self._paused = True
                self._conn.transport.pause_reading()
                self.deadline = self.final  # the reader is behind, not the upstream
            self._wake()

    def _on_complete(self, reuse: bool) -> None:
        self.complete = True
        if not self._stream:
            parts = self._parts
            self._body = body = parts[0] if len(parts) == 1 else b"".join(parts)
            self._parts = [body] if body else []  # iterating a whole response yields it once
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(self, reuse)
        self._wake()

    def _fail(self, error: HttpError) -> None:
        if self._error is None and not self.complete:
            self._error = error
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(self, False)
        self._wake()

    def _expire(self, now: float) -> None:
        if now >= self.final:
            why = "deadline passed while waiting for the response"
        elif self.head_done:
            why = "stream idle past its timeout"
        else:
            why = "no response head within the first-byte timeout"
        error = ReadTimeout(why)
        error.answered = self.head_done
        self._fail(error)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the parser's callbacks land here and go to `response`."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self.counted = False  # holds one of the pool's slots (from connect until lost)
        self.idle_since = 0.0
        self.head_bytes = 0  # head bytes of earlier reads, while the head is incomplete
        self.head_size = 0  # header names and values seen so far

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:  # bytes nobody asked for: the connection is out of step
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            refused = isinstance(cause, ResponseRefused)
            resp._fail(cause if refused else ProtocolError(f"invalid HTTP response: {exc}"))
            self.abort()  # also when the bad bytes followed a complete response
            return
        if not (resp.head_done or resp.complete):
            self.head_bytes += len(data)
            if self.head_bytes > self.pool.limits.max_head_bytes:
                resp._fail(ResponseRefused(f"response head over {self.head_bytes} bytes"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        resp = self.response
        if resp is not None and not resp.complete:
            if resp.head_done and _until_eof(resp):
                resp._on_complete(reuse=False)  # a body delimited by the end of the connection
            else:
                why = f": {exc}" if exc else ""
                error = ConnectionLost(f"connection closed before the response ended{why}")
                error.answered = resp.head_done
                resp._fail(error)

    # --- httptools callbacks ---------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.response is None:  # more bytes after the response: raise, the feed aborts
            raise ProtocolError("bytes after the end of the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        headers = self.response.raw_headers  # type: ignore[union-attr]
        key = _KEYS.get(name) or _key(name)
        if key in headers:
            headers[key] += b", " + value
        else:
            headers[key] = value

    def on_headers_complete(self) -> None:
        resp: Response = self.response  # type: ignore[assignment]
        status = self.parser.get_status_code()
        pool = self.pool
        if self.head_size > pool.limits.max_head_bytes:
            raise ResponseRefused(f"response head over {pool.limits.max_head_bytes} bytes")
        if not 100 <= status <= 599:
            raise ResponseRefused(f"response status {status} outside 100-599")
        if status < 200:  # interim (103 Early Hints, stray 100): the answer follows
            resp.interim = True
            resp.raw_headers.clear()
            return
        resp.status = status
        resp.head_done = True
        if resp._stream:
            pool._due_by(self._stream_deadline(resp))
            resp._wake()
        else:
            resp.deadline = resp.final

    def _stream_deadline(self, resp: Response) -> float:
        """A stream's next bytes are due within the idle timeout (and the deadline)."""
        pool = self.pool
        resp.deadline = deadline = min(
            resp.final,
            pool._loop.time() + pool.stream_idle_timeout_s,  # type: ignore[union-attr]
        )
        return deadline

    def on_chunk_header(self) -> None:
        self.response._chunk = 0  # type: ignore[union-attr]

    def on_chunk_complete(self) -> None:
        self.response._chunk = -1  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        resp: Response = self.response  # type: ignore[assignment]
        resp._size += len(body)
        limits = self.pool.limits
        if resp._stream:
            if resp._chunk >= 0:  # chunked; otherwise a piece is at most one socket read
                resp._chunk += len(body)
                if resp._chunk > limits.max_chunk_bytes:
                    raise ResponseRefused(f"stream chunk over {limits.max_chunk_bytes} bytes")
            if resp._size > limits.max_stream_bytes:
                raise ResponseRefused(f"stream over {limits.max_stream_bytes} bytes")
            self._stream_deadline(resp)
        elif resp._size > limits.max_body_bytes:
            raise ResponseRefused(f"response body over {limits.max_body_bytes} bytes")
        resp._on_body(body)

    def on_message_complete(self) -> None:
        resp = self.response
        if resp.interim:  # type: ignore[union-attr]
            resp.interim = False  # type: ignore[union-attr]
            return
        reuse = self.parser.should_keep_alive() and not self.transport.get_write_buffer_size()
        resp._on_complete(reuse)  # type: ignore[union-attr]

    # --- pool side ---------------------------------------------------------------------
    def finished(self, resp: Response, reuse: bool) -> None:
        """The exchange is over: back to the pool, or closed."""
        if self.response is not resp:
            return
        self.pool._inflight.discard(resp)
        self.response = None
        self.head_bytes = self.head_size = 0
        if resp._paused:
            resp._paused = False
            if not self.closed:
                self.transport.resume_reading()
        if reuse and not self.closed:
            self.pool._release(self)
        else:
            self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()  # connection_lost runs soon and updates the pool


class Http1Pool:
    """Keep-alive connections to one origin (`http://host:port/prefix`), at most `max_connections`.

    `request(method, path, headers, body, timeout=…)`: `path` is appended to the URL's own
    path; `timeout` is the whole exchange's deadline in seconds (connect, wait for a free
    connection, the response head and, unless streamed, the body). With `stream=True` it
    returns once the head arrived and the body is read by iterating the response (the same
    deadline still bounds it). The head must come within `timeouts.upstream_first_byte_s`
    of the request's start, a stream's chunks within `timeouts.upstream_stream_idle_s` of
    each other; `limits` caps what is read.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 100,
        connect_timeout_s: float = 5.0,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        ssl: ssl_module.SSLContext | None = None,
        timeouts: TimeoutsConfig = TimeoutsConfig(),
        limits: ResponsesConfig = ResponsesConfig(),
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self.ssl = (ssl or ssl_module.create_default_context()) if tls else None
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.first_byte_timeout_s = timeouts.upstream_first_byte_s
        self.stream_idle_timeout_s = timeouts.upstream_stream_idle_s
        self.limits = limits
        self.closed = False
        self._count = 0  # connections open or opening
        self._idle: list[_Connection] = []  # newest last (LIFO reuse)
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._host_line = f"host: {self.authority}\r\n"
        self._inflight: set[Response] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = _NEVER
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it first ran in
        self._starts: dict[tuple[str, str], str] = {}  # (method, path) → request line + host

    @property
    def connections(self) -> int:
        return self._count

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        timeout: float,
        stream: bool = False,
    ) -> Response:
        message = self._message(method, path, headers, body)
        loop = self._loop or self._bind()
        now = loop.time()
        deadline = now + timeout
        conn = self._take_idle(now) or await self._acquire(loop, deadline)
        first = min(deadline, now + self.first_byte_timeout_s)
        conn.response = resp = Response(conn, stream, first, deadline)
        self._inflight.add(resp)
        if first < self._sweep_at:
            self._arm(loop, first)
        resp._waiter = waiter = loop.create_future()
        if type(message) is tuple:
            conn.transport.writelines(message)  # no copy of a big body
        else:
            conn.transport.write(message)  # type: ignore[arg-type]
        try:
            await waiter
        except BaseException:
            resp.close()  # cancelled: the connection cannot be trusted any more
            raise
        if resp._error is not None:
            raise resp._error
        return resp

    def _bind(self) -> asyncio.AbstractEventLoop:
        """A pool serves one event loop; asking for it once (not per request) spares a
        getpid() syscall that `asyncio.get_running_loop()` makes on every call."""
        self._loop = loop = asyncio.get_running_loop()
        return loop

    def _message(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes
    ) -> bytes | tuple[bytes, bytes]:
        """The request's bytes: head and body as one (or as two when the body is big, so it
        is not copied). The request line and host are built once per method and path."""
        start = self._starts.get((method, path)) or self._start(method, path)
        lines = ""
        if headers:
            for k, v in headers.items():  # a loop: a comprehension is one more frame
                lines += f"{k}: {v}\r\n"
            if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
                raise ValueError("line break in a request header")
        if body or method == "POST":
            head = f"{start}content-length: {len(body)}\r\n{lines}\r\n".encode("latin-1")
        else:
            head = f"{start}{lines}\r\n".encode("latin-1")
        if len(body) > 16384:
            return head, body
        return head + body if body else head

    def _start(self, method: str, path: str) -> str:
        if " " in path or "\n" in path or "\r" in path:
            raise ValueError(f"invalid request path {path!r}")
        start = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._host_line}"
        if len(self._starts) < 64:  # the router asks for a few fixed paths
            self._starts[(method, path)] = start
        return start

    def _take_idle(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport.is_closing():
                continue  # the server closed it while idle
            if now - conn.idle_since > self.idle_timeout_s:
                conn.abort()  # the server may close it any moment now
                continue
            return conn
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        while True:
            if self.closed:
                raise ConnectError("connection pool closed")
            conn = self._take_idle(loop.time())
            if conn is not None:
                return conn
            if self._count < self.max_connections:
                return await self._connect(loop, deadline)
            await self._wait_for_slot(loop, deadline)

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, _set_result, waiter, False)
        try:
            woken = await waiter
        except BaseException:  # cancelled: a wake it was given goes to the next in line
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self._wake_one()
            raise
        finally:
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        if not woken:
            raise PoolTimeout(f"all {self.max_connections} connections busy until the deadline")

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        self._count += 1
        conn = _Connection(self)
        timeout = min(self.connect_timeout_s, deadline - loop.time())
        where = f"{self.host}:{self.port}"
        try:
            if timeout <= 0:
                raise TimeoutError
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            self._slot_freed()
            raise ConnectTimeout(f"connect to {where} timed out") from None
        except OSError as exc:
            self._slot_freed()
            tls = isinstance(exc, ssl_module.SSLError)  # its errno is not an OS one
            why = os.strerror(exc.errno) if exc.errno and not tls else str(exc)
            raise ConnectError(f"connect to {where} failed: {why}") from None
        except BaseException:
            self._slot_freed()
            raise
        if conn.closed:  # lost before it was ours: its connection_lost freed nothing
            self._slot_freed()
            raise ConnectError(f"connection to {where} closed at once")
        conn.counted = True
        if self.closed:
            conn.abort()  # connection_lost frees the slot
            raise ConnectError("connection pool closed")
        return conn

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """One timer per pool, at the earliest deadline in flight (see the module docstring)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweeper = loop.call_at(when, self._sweep, loop)
        self._sweep_at = when

    def _due_by(self, when: float) -> None:
        """A response's deadline moved to `when`: the timer must fire by then."""
        if when < self._sweep_at:
            self._arm(self._loop, when)  # type: ignore[arg-type]

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper, self._sweep_at = None, _NEVER
        now = loop.time() + 0.001  # loop clocks are coarse: never re-arm for a past instant
        for resp in [r for r in self._inflight if r.deadline <= now]:
            resp._expire(now)  # its connection is aborted and leaves `_inflight`
        if self._inflight:
            self._arm(loop, min(r.deadline for r in self._inflight))

    def _release(self, conn: _Connection) -> None:
        if self.closed:
            conn.abort()
            return
        conn.idle_since = self._loop.time()  # type: ignore[union-attr]
        self._idle.append(conn)
        if self._waiters:
            self._wake_one()

    def _lost(self, conn: _Connection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self._slot_freed()

    def _slot_freed(self) -> None:
        self._count -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    async def close(self) -> None:
        """Close idle connections now; busy ones close when their exchange ends."""
        self.closed = True
        while self._idle:
            self._idle.pop().abort()
        while self._waiters:
            _set_result(self._waiters.popleft(), True)  # they see `closed` and give up
        await asyncio.sleep(0)  # let the transports run connection_lost


_NEVER = float("inf")
_KEYS: dict[bytes, str] = {}  # header name as sent → lower-cased str (decoding each cost more)


def _key(name: bytes) -> str:
    key = name.decode("latin-1").lower()
    if len(_KEYS) < 256:  # servers send a handful of names; a hostile one cannot grow it
        _KEYS[name] = key
    return key


def _until_eof(resp: Response) -> bool:
    """Is this response's body delimited by the end of the connection (no length, not chunked)?"""
    headers = resp.raw_headers
    return (
        "content-length" not in headers
        and b"chunked" not in headers.get("transfer-encoding", b"")
        and resp.status not in (204, 304)
    )


def _set_result(future: asyncio.Future, value: object) -> None:
    if not future.done():
        future.set_result(value)
