"""The proxied APIs' edge: raw ASGI in (headers, body) and out (a whole or streamed reply).

Why not Starlette's Request/Response here: on the rules-only path they cost about as much
as everything else the router does per request (benchmarks/router/README.md). The control
endpoints (/readyz, /metrics, /v1/classify, ...) stay Starlette routes; only the three
proxied APIs take this path.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from router.errors import RouterError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]  # as ASGI messages carry them
DECODED_HEADERS = "edgepack.headers"  # scope key: the request headers as str (our server)
CUT = "edgepack.cut"  # scope key: the request's `Cut` (router/drain.py sets it)
CUT_STATUS = 503  # the status a cut request is counted and logged with
REFUSED = "edgepack.refused"  # http.disconnect key: (status, reason) of a body our server
# refused (too slow, bad framing); the app answers it (router/http_protocol.py)


class Cut:
    """Ends a request at the end of the drain's grace period. A stream in progress
    (`streaming`) is ended broken by `send_stream`; any other request is cancelled by the
    drain, which answers it."""

    __slots__ = ("_future", "streaming")

    def __init__(self) -> None:
        self._future: asyncio.Future | None = None
        self.streaming = False

    @property
    def future(self) -> asyncio.Future:
        if self._future is None:  # made only for streams: most requests never wait on it
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    @property
    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def fire(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class StreamCut(Exception):
    """Raised after a cut stream's error event: the server then closes the connection
    without the chunked encoding's last chunk, so no client takes the cut answer for a
    whole one."""


def header_dict(scope: Scope) -> dict[str, str]:
    """Request headers by name; a repeated header keeps its last value. Names arrive
    lower-cased: the ASGI spec asks servers to send them so. The router's own server
    (router/http_protocol.py) decodes them as it parses, which costs less."""
    decoded = scope.get(DECODED_HEADERS)
    if decoded is not None:
        return decoded
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes `limit` bytes, declared or sent."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _gone(message)
    body = message.get("body", b"")
    if not message.get("more_body"):  # the usual case: one message
        if len(body) > limit:
            raise too_large(limit)
        return body
    chunks, size = [body], len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _gone(message)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _gone(message: dict[str, Any]) -> RouterError:
    """The body ended early: refused by the server (408, 400), or the client left."""
    refused = message.get(REFUSED)
    if refused is not None:
        status, reason = refused
        return RouterError(
            status, "request_timeout" if status == 408 else "invalid_request_error", reason
        )
    return RouterError(400, "client_disconnected", "the client went away mid-body")


def too_large(limit: int) -> RouterError:
    return RouterError(413, "request_too_large", f"request body exceeds {limit} bytes")


def encode_headers(headers: dict[str, str]) -> RawHeaders:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_whole(send: Send, status: int, headers: RawHeaders, body: bytes) -> None:
    """`headers` gets the content-length appended."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_stream(
    send: Send,
    receive: Receive,
    status: int,
    headers: RawHeaders,
    chunks: AsyncIterator[bytes],
    cut: Cut | None = None,
) -> None:
    """Pass chunks on as they arrive. If the client goes away the upstream stream is closed
    at once (its `finally` frees the upstream), instead of being read to the end; if the
    drain `cut`s it, it also ends broken (`end_broken`)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    pump = asyncio.ensure_future(_pump(send, chunks))
    gone = asyncio.ensure_future(_disconnected(receive))
    waits = [pump, gone]
    if cut is not None:
        cut.streaming = True
        waits.append(cut.future)
    broken = False
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        broken = cut is not None and cut.done and not pump.done()
    finally:
        gone.cancel()
        if not pump.done():
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if broken:
        await end_broken(send, headers, "the router shut down before the answer ended")


def error_event(message: str, kind: str = "upstream_error") -> bytes:
    """An SSE event in OpenAI's error shape, which the openai SDK raises as APIError."""
    return b"data: " + json.dumps({"error": {"type": kind, "message": message}}).encode() + b"\n\n"


async def end_broken(send: Send, headers: RawHeaders, why: str) -> None:
    """End a started answer as an error: an SSE answer gets an error event in OpenAI's
    shape (the openai SDK raises it), then the connection is cut short of the chunked
    encoding's last chunk (`StreamCut`), so a client reads a broken answer, never a
    complete-looking one."""
    if any(k == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers):
        body = error_event(why, "unavailable")
        await send({"type": "http.response.body", "body": body, "more_body": True})
    raise StreamCut(why)


async def _pump(send: Send, chunks: AsyncIterator[bytes]) -> None:
    async for chunk in chunks:
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def then(stream: AsyncIterator[bytes], done: Callable[[], object]) -> AsyncIterator[bytes]:
    """Pass a stream through, then run `done` (sync or async) however it ended; closing
    this closes `stream` too, so the upstream below is freed at once."""
    try:
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                yield chunk
    finally:
        result = done()
        if inspect.isawaitable(result):
            await result
