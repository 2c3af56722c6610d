"""Respond: turn an upstream reply or a refusal into the caller's response, with
X-Route / X-Sensitivity / X-Request-Id headers, one metrics update and one JSON log line.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from starlette.responses import Response

from router import logs
from router.asgi import (
    CUT_STATUS,
    Cut,
    RawHeaders,
    Receive,
    Send,
    encode_headers,
    send_stream,
    send_whole,
    then,
)
from router.context import RequestContext
from router.errors import RouterError
from router.metrics import RouterMetrics
from router.upstreams.base import UpstreamReply


def route_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id}
    if ctx.route:
        headers["x-route"] = ctx.route
    if ctx.decision is not None:
        headers["x-sensitivity"] = ctx.decision.sensitivity
    return headers


def reply_headers(ctx: RequestContext, reply: UpstreamReply) -> RawHeaders:
    """`route_headers(ctx)` and the upstream's content type, as the byte pairs the server
    writes. Only the request id differs from one answer to the next: the rest comes from a
    few routes, sensitivities and content types, so each combination is encoded once."""
    sensitivity = ctx.decision.sensitivity if ctx.decision is not None else ""
    key = (ctx.route, sensitivity, reply.content_type)
    raw = [(b"x-request-id", ctx.request_id.encode("latin-1")), *(_TAILS.get(key) or _tail(key))]
    if reply.headers:  # the pools' extra headers (none sets any today) come first; ours win
        extra = {k: v for k, v in reply.headers.items() if k not in OURS}
        raw[:0] = encode_headers(extra)
    return raw


OURS = frozenset({"x-request-id", "x-route", "x-sensitivity", "content-type"})
_TAILS: dict[tuple[str, str, str], tuple[tuple[bytes, bytes], ...]] = {}


def _tail(key: tuple[str, str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """The encoded x-route, x-sensitivity and content-type pairs (each only if set);
    at most 256 kept, as content types come from the upstreams' answers."""
    route, sensitivity, content_type = key
    named = ((b"x-route", route), (b"x-sensitivity", sensitivity))
    tail = tuple((k, v.encode("latin-1")) for k, v in named if v)
    tail += ((b"content-type", content_type.encode("latin-1")),)
    if len(_TAILS) < 256:
        _TAILS[key] = tail
    return tail


def error_body(err: RouterError) -> bytes:
    return json.dumps({"error": {"type": err.kind, "message": err.message}}).encode()


def error_headers(err: RouterError, ctx: RequestContext | None = None) -> dict[str, str]:
    headers = route_headers(ctx) if ctx else {}
    headers["content-type"] = "application/json"
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
    return headers


def error_response(err: RouterError, ctx: RequestContext | None = None) -> Response:
    """The refusal as a Starlette response (control endpoints)."""
    return Response(error_body(err), err.status, error_headers(err, ctx))


async def send_error(send: Send, err: RouterError, ctx: RequestContext | None = None) -> None:
    headers = encode_headers(error_headers(err, ctx))
    await send_whole(send, err.status, headers, error_body(err))


async def send_reply(
    send: Send,
    receive: Receive,
    ctx: RequestContext,
    reply: UpstreamReply,
    metrics: RouterMetrics,
    cut: Cut | None = None,
) -> None:
    """A stream the drain cuts is counted and logged with CUT_STATUS, not the upstream's."""
    headers = reply_headers(ctx, reply)
    if reply.stream is None:
        finish(ctx, reply.status, metrics)
        await send_whole(send, reply.status, headers, reply.body or b"")
        return
    if "cache-control" not in reply.headers:
        headers.append((b"cache-control", b"no-cache"))
    stream = then(reply.stream, lambda: finish(ctx, _stream_status(reply, cut), metrics))
    await send_stream(send, receive, reply.status, headers, stream, cut)


def _stream_status(reply: UpstreamReply, cut: Cut | None) -> int:
    return CUT_STATUS if cut is not None and cut.done else reply.status


def finish(ctx: RequestContext, status: int, metrics: RouterMetrics) -> None:
    """Count and log the request once: metrics labels are route/sensitivity/status only."""
    route = ctx.route or "none"
    sensitivity = ctx.decision.sensitivity if ctx.decision else "unknown"
    requests, latency = metrics.answer_children(route, sensitivity, status)
    requests.inc()
    latency.observe(time.monotonic() - ctx.started)
    logs.request_record(ctx, status)


def refused(metrics: RouterMetrics, api: str, status: int, why: str) -> None:
    """Count and log a request refused before it was read (route none, sensitivity
    unknown). `why` is the refusal's own message, which never quotes the request."""
    metrics.answer_children("none", "unknown", status)[0].inc()
    logs.event("request refused", api=api, status=status, why=why)


def refusal_counter(metrics: RouterMetrics) -> Callable[[int, str], None]:
    """`refused` for the refusals the HTTP server makes itself (router/http_protocol.py)."""
    return lambda status, why: refused(metrics, "", status, why)
