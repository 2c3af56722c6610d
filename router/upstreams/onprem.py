"""The on-prem pool: OpenAI-protocol servers (vLLM, TensorRT-LLM, Triton's OpenAI frontend).

Pick: weighted least-outstanding requests: the healthy upstream with the fewest in-flight
requests per unit of weight, ties broken at random. Health: an active check (GET
`health.path`) every `interval_s` takes an upstream out after `unhealthy_after` failures
and back after `healthy_after` successes; a failed request (connect error, 502/503/504)
takes it out at once, so the checks are what probe it back in. The breaker plugs in
as `outlier` (consulted at pick, told every result).

HTTP client: router/upstreams/http1.py (one keep-alive pool per upstream, at most
`max_connections` each), chosen by measurement (docs/decisions/001-hand-written-http1-client.md).
Its errors map to the answers the router gives: no connection → 502 upstream_unreachable;
deadline, first-byte or connect timeout → 504 upstream_timeout; closed mid-answer → 502
upstream_error; an answer over a cap (config `responses`) or with a status outside 100–599
→ 502 upstream_invalid_response (logged with the reason); 5xx/429 → upstream_error with
the upstream's Retry-After. Only failures before the request could have run are retried
elsewhere: a first-byte timeout or an oversized answer would cost the next upstream as
much. A stream that fails after its head ends broken (`StreamBroken`), never cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from router import logs
from router.asgi import error_event
from router.config import OnPremConfig, OnPremUpstream, ResponsesConfig, TimeoutsConfig
from router.context import RequestContext
from router.metrics import RouterMetrics
from router.steps import Outlier
from router.upstreams.base import (
    RETRYABLE_STATUS,
    StreamBroken,
    UpstreamFailure,
    UpstreamReply,
)
from router.upstreams.http1 import (
    ConnectError,
    ConnectTimeout,
    Http1Pool,
    HttpError,
    PoolTimeout,
    ReadTimeout,
    Response,
    ResponseRefused,
)

FORWARD_HEADERS = ("content-type", "accept", "authorization", "x-request-id")
_COPIED = FORWARD_HEADERS[:-1]  # x-request-id is the router's own (kept or generated)


@dataclass
class Member:
    config: OnPremUpstream
    base: str
    outstanding: int = 0
    healthy: bool = True
    fails: int = 0  # consecutive failed checks
    oks: int = 0  # consecutive passed checks
    http: Http1Pool | None = None  # its keep-alive connections (from start() to close())
    name: str = field(init=False)  # the config's, copied: read on every pick and record
    weight: float = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.config.name
        self.weight = self.config.weight


class OnPremPool:
    def __init__(
        self,
        config: OnPremConfig,
        metrics: RouterMetrics,
        outlier: Outlier,
        name: str = "onprem",
        timeouts: TimeoutsConfig = TimeoutsConfig(),
        responses: ResponsesConfig = ResponsesConfig(),
    ) -> None:
        self.name = name
        self.config = config
        self.timeouts = timeouts
        self.responses = responses
        self.metrics = metrics
        self.outlier = outlier
        self.members = [Member(u, str(u.url).rstrip("/")) for u in config.upstreams]
        self._checker: asyncio.Task | None = None
        for m in self.members:
            self._export(m)

    def inherit(self, old: OnPremPool) -> None:
        """A reload: an upstream this pool shares with `old` (same name and address) keeps
        its health, so an upstream that is down stays out until its checks pass."""
        before = {(m.name, m.base): m for m in old.members}
        for m in self.members:
            prior = before.get((m.name, m.base))
            if prior is not None:
                m.healthy, m.fails, m.oks = prior.healthy, prior.fails, prior.oks

    async def start(self) -> None:
        for m in self.members:
            m.http = Http1Pool(
                m.base,
                max_connections=self.config.max_connections,
                connect_timeout_s=self.config.connect_timeout_s,
                timeouts=self.timeouts,
                limits=self.responses,
            )
        self._checker = asyncio.create_task(self._check_forever())

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        for m in self.members:
            if m.http is not None:
                await m.http.close()

    def usable(self) -> bool:
        """Asked on every request (the handler's route list): a plain loop, as any() over a
        generator cost ~0.4 µs more per call."""
        allow, name = self.outlier.allow, self.name
        for m in self.members:  # noqa: SIM110
            if m.healthy and allow(name, m.name):
                return True
        return False

    def pick(self, avoid: tuple[str, ...] = ()) -> Member | None:
        """Weighted least-outstanding among available members; random among equals. A retry
        `avoid`s the members that already failed it while another one is available: a dead
        upstream fails fast, so it has the fewest outstanding requests and would draw the
        retry back until its breaker opens (Envoy's previous-hosts retry predicate)."""
        best: list[Member] = []
        best_load = float("inf")
        allow, name = self.outlier.allow, self.name
        for m in self.members:
            if not (m.healthy and allow(name, m.name)) or m.name in avoid:
                continue
            load = (m.outstanding + 1) / m.weight  # with this request, per unit of weight
            if load < best_load:
                best, best_load = [m], load
            elif load == best_load:
                best.append(m)
        if len(best) < 2:
            return best[0] if best else (self.pick() if avoid else None)
        return random.choice(best)

    async def send(self, ctx: RequestContext) -> UpstreamReply:
        member = self.pick(ctx.failed_upstreams)
        if member is None:
            raise UpstreamFailure(
                503,
                "no_upstream_available",
                "no healthy on-prem upstream",
                retryable=True,
                retry_after=self.config.health.interval_s,
            )
        picked = getattr(self.outlier, "picked", None)
        if picked is not None:
            picked(self.name, member.name)  # a half-open breaker counts its probes
        member.outstanding += 1
        try:
            reply = await self._exchange(ctx, member)
        except BaseException:
            member.outstanding -= 1
            self._record(member, False)
            ctx.failed_upstreams += (member.name,)
            raise
        if reply.stream is None:  # a stream gives its slot back when it ends (_chunks)
            member.outstanding -= 1
            self._record(member, True)
        return reply

    async def _exchange(self, ctx: RequestContext, member: Member) -> UpstreamReply:
        http = member.http
        assert http is not None, "pool not started"
        given, headers = ctx.headers, {}
        for k in _COPIED:  # a loop: a comprehension is one more frame per request
            if k in given:
                headers[k] = given[k]
        headers["x-request-id"] = ctx.request_id
        try:
            resp = await http.request(
                "POST", ctx.api.upstream_path, headers, ctx.body,
                timeout=max(ctx.remaining(), 0.001), stream=ctx.stream,
            )  # fmt: skip
        except HttpError as exc:
            raise self._failure(member.name, exc, answered=False) from None
        raw_ctype = resp.raw_headers.get("content-type")
        ctype = _CONTENT_TYPES.get(raw_ctype) or _content_type(raw_ctype)
        if resp.status >= 500 or resp.status == 429:
            resp.close()  # the error body is not passed on; an unread rest costs the connection
            raise UpstreamFailure(
                resp.status if resp.status != 500 else 502,
                "upstream_error",
                f"on-prem upstream {member.name} answered {resp.status}",
                retryable=resp.status in RETRYABLE_STATUS,
                retry_after=_retry_after(resp.headers.get("retry-after")),
                upstream=member.name,
            )
        if not ctx.stream or not ctype.startswith("text/event-stream"):
            body = resp.body  # whole once complete, as a response not streamed always is
            if body is None:
                try:
                    body = await resp.read()
                except HttpError as exc:
                    raise self._failure(member.name, exc, answered=True) from None
            return UpstreamReply(resp.status, ctype, body=body, upstream=member.name)
        stream = self._chunks(resp, member.name, self._releaser(member))
        return UpstreamReply(resp.status, ctype, stream=stream, upstream=member.name)

    async def _chunks(self, resp: Response, upstream: str, release) -> AsyncIterator[bytes]:
        """SSE passed through as it arrives; the slot is released when the stream ends.

        Only the upstream's own failure counts against it: a caller who leaves early closes
        this generator, which drops the connection (the GPU stops generating for nobody)
        but leaves the upstream healthy. A failure mid-stream ends it broken: an error
        event, then `StreamBroken`, which cuts the answer short of its end.
        """
        failed = False
        try:
            async for chunk in resp:
                yield chunk
        except HttpError as exc:
            failed = True
            why = f"on-prem upstream {upstream}: {exc}"
            self.metrics.child(self.metrics.streams_broken, self.name).inc()
            logs.event("stream broken", pool=self.name, upstream=upstream, why=str(exc))
            yield error_event(why)
            raise StreamBroken(why) from None
        finally:
            resp.close()  # a stream left early takes its connection down
            release(not failed)

    def _failure(self, upstream: str, exc: HttpError, *, answered: bool) -> UpstreamFailure:
        """The client's error as the router's answer; only what cannot have run (no
        connection, no slot, a connection lost before the head) is retried elsewhere."""
        retryable = True
        if isinstance(exc, ConnectTimeout | PoolTimeout):
            status, kind, what = 504, "upstream_timeout", "timed out"
        elif isinstance(exc, ReadTimeout):
            status, kind, what, retryable = 504, "upstream_timeout", str(exc), False
        elif isinstance(exc, ResponseRefused):
            status, kind, what, retryable = 502, "upstream_invalid_response", str(exc), False
            logs.event("upstream answer refused", pool=self.name, upstream=upstream, why=what)
        elif isinstance(exc, ConnectError) or not (answered or exc.answered):
            status, kind, what = 502, "upstream_unreachable", type(exc).__name__
        else:
            status, kind, what = 502, "upstream_error", "connection lost"
        return UpstreamFailure(
            status, kind, f"on-prem upstream {upstream}: {what}", retryable=retryable,
            upstream=upstream,
        )  # fmt: skip

    def _releaser(self, member: Member) -> Callable[[bool], None]:
        """Gives the stream's slot back once, when it ends (early, failed or complete)."""
        released = False

        def release(ok: bool) -> None:
            nonlocal released
            if not released:
                released = True
                member.outstanding -= 1
                self._record(member, ok)

        return release

    def _record(self, member: Member, ok: bool) -> None:
        self.outlier.record(self.name, member.name, ok)
        if not ok and self.config.health.eject_on_failure and member.healthy:
            self._set_health(member, False, "request failed")

    def _set_health(self, member: Member, healthy: bool, why: str) -> None:
        member.healthy = healthy
        member.fails = member.oks = 0
        logs.event(
            "upstream health", pool=self.name, upstream=member.name, healthy=healthy, why=why
        )

    def _export(self, m: Member) -> None:
        """In-flight and health per upstream, read when Prometheus scrapes (a `set()` on
        every send and release cost more than the pick itself)."""
        labels = (self.name, m.name)
        watch = self.metrics.watch
        watch(self.metrics.upstream_in_flight.labels(*labels), lambda: m.outstanding)
        watch(self.metrics.upstream_healthy.labels(*labels), lambda: int(m.healthy))

    async def _check_forever(self) -> None:
        while True:
            await asyncio.gather(*(self.check(m) for m in self.members))
            await asyncio.sleep(self.config.health.interval_s)

    async def check(self, m: Member) -> bool:
        """One active health check; flips the member after enough results in a row."""
        cfg = self.config.health
        assert m.http is not None, "pool not started"
        try:
            resp = await m.http.request("GET", cfg.path, timeout=cfg.timeout_s)
            ok = 200 <= resp.status < 300
        except HttpError:
            ok = False
        if ok:
            m.oks, m.fails = m.oks + 1, 0
            if not m.healthy and m.oks >= cfg.healthy_after:
                self._set_health(m, True, "health checks passed")
        else:
            m.fails, m.oks = m.fails + 1, 0
            if m.healthy and m.fails >= cfg.unhealthy_after:
                self._set_health(m, False, "health checks failed")
        return ok


_CONTENT_TYPES: dict[bytes | None, str] = {None: "application/json"}  # the default if none


def _content_type(raw: bytes) -> str:
    """The upstream's content type as text: decoded once per value (at most 64 kept; an
    upstream sends one or two)."""
    text = raw.decode("latin-1")
    if len(_CONTENT_TYPES) < 64:
        _CONTENT_TYPES[raw] = text
    return text


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
