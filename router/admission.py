"""Admission control: priority tiers, reserved capacity, bounded queues, shedding.

Why: "server busy" is mostly a queue nobody bounded. Each pool gets a concurrency limit;
a higher tier can keep a share of it that lower tiers may never take (so `high` still
finds a slot while `low` floods), every tier waits in its own bounded queue for at most
its deadline, and a refused request learns *when* to come back: `Retry-After` comes
from the drain rate observed over the last seconds, not from a constant.

Shedding answers 429 when the caller's tier is over its share while the pool still has
(reserved) room, and 503 when the pool itself is saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from router.config import TIERS, AdmissionConfig, Tier
from router.errors import RouterError
from router.upstreams.base import UpstreamFailure

_AHEAD: dict[str, tuple[Tier, ...]] = {t: TIERS[: TIERS.index(t) + 1] for t in TIERS}
"""Each tier and the tiers above it: the queues a new request of that tier may not jump."""


class Shed(Exception):
    """A request refused by admission control; the app answers `status` + Retry-After."""

    def __init__(self, status: int, reason: str, retry_after: int, pool: str, tier: str):
        super().__init__(f"{pool}/{tier}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.pool = pool
        self.tier = tier


def resolve_tier(headers: Mapping[str, str], cfg: AdmissionConfig) -> Tier:
    """The request's tier: the caller map wins, then X-Priority, then the default."""
    caller = headers.get(cfg.caller_header)
    if caller is not None and caller in cfg.callers:
        return cfg.callers[caller]
    asked = (headers.get(cfg.priority_header) or "").strip().lower()
    return asked if asked in TIERS else cfg.default_tier  # type: ignore[return-value]


def request_deadline(
    headers: Mapping[str, str], cfg: AdmissionConfig, started: float, deadline: float
) -> float:
    """The request's deadline: the caller's X-Deadline-Ms may shorten `deadline`, never extend."""
    raw = headers.get(cfg.deadline_header)
    if raw:
        with contextlib.suppress(ValueError):
            return min(deadline, started + max(float(raw) / 1000.0, 0.001))
    return deadline


class DrainRate:
    """Completions per second over a sliding window (what Retry-After is computed from)."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        self._done: deque[float] = deque()

    def record(self) -> None:
        """One completion. Old ones are dropped here too, not only when `rate()` is read
        (at a shed or a /readyz), so the window stays bounded however rarely that is."""
        now = self._clock()
        self._done.append(now)
        self._forget(now)

    def rate(self) -> float:
        now = self._clock()
        self._forget(now)
        span = max(min(self.window_s, now - self._started), 0.5)
        return len(self._done) / span

    def _forget(self, now: float) -> None:
        edge = now - self.window_s
        while self._done and self._done[0] < edge:
            self._done.popleft()


@dataclass(slots=True)
class Slot:
    """A held admission slot; release it exactly once (idempotent)."""

    controller: AdmissionController
    tier: Tier
    released: bool = False
    since: float = 0.0

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.controller._release(held_s=self.controller._clock() - self.since)

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class AdmissionController:
    """Concurrency limit of one pool, shared by the tiers with reservations and queues."""

    def __init__(
        self,
        pool: str,
        limit: int,
        cfg: AdmissionConfig,
        metrics: object | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.cfg = cfg
        self.metrics = metrics
        self._clock = clock
        self.in_use = 0
        self._queues: dict[Tier, deque[asyncio.Future[None]]] = {t: deque() for t in TIERS}
        self.drain = DrainRate(cfg.drain_window_s, clock)
        self.service_s = 0.0  # moving average of how long a slot is held
        self.set_limit(limit)
        self._export()

    def set_limit(self, limit: int, cfg: AdmissionConfig | None = None) -> None:
        """(Re)size the pool, e.g. on a config reload; held slots stay valid."""
        self.cfg = cfg or self.cfg
        self.limit = max(int(limit), 1)
        self._caps: dict[Tier, int] = {}
        kept = 0
        for tier in TIERS:  # a tier may use everything not reserved for tiers above it
            self._caps[tier] = self.limit - kept
            kept += round(self.cfg.reserved.get(tier, 0.0) * self.limit)
        self._dispatch()

    def cap(self, tier: Tier) -> int:
        return self._caps[tier]

    def queued(self, tier: Tier | None = None) -> int:
        if tier is not None:
            queue = self._queues[tier]
            return sum(not f.done() for f in queue) if queue else 0
        return sum(self.queued(t) for t in TIERS)

    def try_acquire(self, tier: Tier) -> Slot | None:
        """A slot now, or None; never jumps a queue of its own or a higher tier."""
        if self.in_use >= self._caps[tier] or any(
            self._queues[t] and self.queued(t) for t in _AHEAD[tier]
        ):
            return None
        self.in_use += 1
        return Slot(self, tier, since=self._clock())

    async def acquire(self, tier: Tier, deadline: float, spill: bool = False) -> Slot:
        """A slot, after queueing if needed; raises Shed when the queue is full or times out.
        `spill`: the request will try another route next (counted as spill_*, not shed)."""
        slot = self.try_acquire(tier)
        if slot is not None:
            return slot
        queue = self._queues[tier]
        prefix = "spill_" if spill else ""
        if self.queued(tier) >= self.cfg.queue_size[tier]:
            raise self._shed(tier, prefix + "queue_full")
        # a slot granted too late for the call to finish in time only wastes upstream work
        wait = min(deadline - self._clock() - self.service_s, self.cfg.max_queue_wait_s[tier])
        if wait <= 0:
            raise self._shed(tier, prefix + "deadline")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        try:
            await asyncio.wait({fut}, timeout=wait)
        except asyncio.CancelledError:
            self._abandon(fut)
            raise
        if fut.done() and not fut.cancelled():
            return Slot(self, tier, since=self._clock())
        self._abandon(fut)
        raise self._shed(tier, prefix + "queue_timeout")

    def retry_after(self, tier: Tier) -> int:
        """Seconds until this tier's turn, from the observed drain rate."""
        cfg = self.cfg
        ahead = sum(self.queued(t) for t in TIERS[: TIERS.index(tier) + 1]) + 1
        # only the share of the pool this tier may use drains for it
        share = self._caps[tier] / self.limit if self.limit else 1.0
        rate = self.drain.rate() * max(share, 0.05)
        if rate <= 0:
            secs = float(cfg.retry_after_max_s if self.in_use else cfg.retry_after_min_s)
        else:
            secs = ahead / rate
        return int(min(max(math.ceil(secs), cfg.retry_after_min_s), cfg.retry_after_max_s))

    def snapshot(self) -> dict[str, object]:
        """State for /readyz and tests."""
        return {
            "limit": self.limit,
            "in_use": self.in_use,
            "queued": {t: self.queued(t) for t in TIERS},
            "drain_rate": round(self.drain.rate(), 3),
        }

    # internals -------------------------------------------------------------

    def _shed(self, tier: Tier, reason: str) -> Shed:
        status = 429 if self.in_use < self.limit else 503
        if self.metrics is not None:
            self.metrics.shed.labels(pool=self.pool, tier=tier, reason=reason).inc()
        return Shed(status, reason, self.retry_after(tier), self.pool, tier)

    def _abandon(self, fut: asyncio.Future[None]) -> None:
        """Leave the queue; a slot granted in the same instant is handed on, not leaked."""
        if fut.done() and not fut.cancelled():
            self._release(completed=False)
        else:
            fut.cancel()
            for q in self._queues.values():
                if fut in q:
                    q.remove(fut)

    def _release(self, completed: bool = True, held_s: float | None = None) -> None:
        self.in_use -= 1
        if completed:
            self.drain.record()
        if held_s is not None:
            self.service_s = held_s if not self.service_s else 0.9 * self.service_s + 0.1 * held_s
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand freed slots to waiters, highest tier first, within each tier's cap."""
        for tier in TIERS:
            queue = self._queues[tier]
            while queue and self.in_use < self._caps[tier]:
                fut = queue.popleft()
                if fut.done():
                    continue
                self.in_use += 1
                fut.set_result(None)

    def _export(self) -> None:
        """Queue depths and slots in use, read when Prometheus scrapes (a `set()` on every
        acquire and release cost more than the rest of admission)."""
        m = self.metrics
        if m is None or not hasattr(m, "queue_depth"):
            return
        for tier in TIERS:
            m.watch(m.queue_depth.labels(pool=self.pool, tier=tier), lambda t=tier: self.queued(t))
        m.watch(m.pool_in_use.labels(pool=self.pool), lambda: self.in_use)


def pool_limits(cfg: AdmissionConfig, sizes: Mapping[str, int]) -> dict[str, int]:
    """Each pool's limit: the configured one, else the default `sizes` gives for it."""
    return {name: cfg.pool_limits.get(name, size) for name, size in sizes.items()}


class AdmissionSeam:
    """The handler's admit step (router.steps.Admission): a controller per pool.

    A route with another allowed route after it (overflow, fallback) waits at most
    `spill_wait_s` and then lets the handler try the next one; the last route queues up
    to the request's deadline, and a refusal there is the caller's 429/503 + Retry-After.
    """

    def __init__(self, cfg: AdmissionConfig, limits: Mapping[str, int], metrics: object = None):
        self.cfg = cfg
        self.metrics = metrics
        self.controllers = {
            n: AdmissionController(n, lim, cfg, metrics) for n, lim in limits.items()
        }

    def reconfigure(self, cfg: AdmissionConfig, limits: Mapping[str, int]) -> None:
        """SIGHUP: new limits and tier settings; slots held and queues waiting stay valid."""
        self.cfg = cfg
        for name, limit in limits.items():
            if name in self.controllers:
                self.controllers[name].set_limit(limit, cfg)
            else:
                self.controllers[name] = AdmissionController(name, limit, cfg, self.metrics)

    @staticmethod
    def pool_of(ctx: object, route: str) -> str:
        if route == "fallback":  # each sensitivity class has its own fallback pool
            decision = getattr(ctx, "decision", None)
            sensitivity = getattr(decision, "sensitivity", "confidential")
            return f"fallback-{sensitivity}"
        return route

    def admit(self, ctx: object, route: str) -> Admit:
        return Admit(self, ctx, route)

    async def acquire(self, ctx: object, route: str) -> Slot | None:
        """The request's slot in `route`'s pool (None: that pool has no limit). A free slot
        is taken at once; only a full pool awaits its queue (`_wait`)."""
        ctx.tier = resolve_tier(ctx.headers, self.cfg)
        ctx.deadline = request_deadline(ctx.headers, self.cfg, ctx.started, ctx.deadline)
        pool = route if route != "fallback" else self.pool_of(ctx, route)
        controller = self.controllers.get(pool)
        if controller is None:
            return None
        slot = controller.try_acquire(ctx.tier)
        if slot is None:
            slot = await self._wait(controller, ctx, route)
        if route == "fallback" and self.metrics is not None:
            self.metrics.fallbacks.labels(pool.removeprefix("fallback-")).inc()
        return slot

    async def _wait(self, controller: AdmissionController, ctx: object, route: str) -> Slot:
        """Queue for a slot: the last allowed route up to the deadline, an earlier one for
        `spill_wait_s` (then the handler tries the next route)."""
        routes = ctx.routes or (route,)
        last = routes[-1] == route or route not in routes
        wait_until = (
            ctx.deadline if last else min(ctx.deadline, self._clock() + self.cfg.spill_wait_s)
        )
        try:
            return await controller.acquire(ctx.tier, wait_until, spill=not last)
        except Shed as shed:
            kind = "rate_limited" if shed.status == 429 else "overloaded"
            message = f"{route} is busy for tier {ctx.tier} ({shed.reason})"
            if not last:
                raise UpstreamFailure(shed.status, kind, message, retryable=True,
                                      retry_after=shed.retry_after) from None  # fmt: skip
            raise RouterError(shed.status, kind, message, retry_after=shed.retry_after) from None

    @staticmethod
    def _clock() -> float:
        return time.monotonic()

    def snapshot(self) -> dict[str, object]:
        return {name: c.snapshot() for name, c in sorted(self.controllers.items())}


class Admit:
    """`async with seam.admit(ctx, route)`: holds the slot for the block (the handler moves
    a streamed answer's exit to the stream's end). A class, not @asynccontextmanager: this
    runs on every request."""

    __slots__ = ("ctx", "route", "seam", "slot")

    def __init__(self, seam: AdmissionSeam, ctx: object, route: str) -> None:
        self.seam, self.ctx, self.route = seam, ctx, route
        self.slot: Slot | None = None

    async def __aenter__(self) -> None:
        self.slot = await self.seam.acquire(self.ctx, self.route)

    async def __aexit__(self, *exc: object) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()
