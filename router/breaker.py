"""Circuit breaking / outlier ejection, one breaker per upstream.

Why: an upstream that keeps failing should stop receiving traffic before it drags every
request's latency up, and come back on its own once it heals. As in Envoy's outlier
detection: eject after N consecutive failures or when the error rate over a window
passes a threshold (with a minimum of requests); each repeated ejection lasts longer
(base × number of ejections, capped); once the time is up the breaker is half-open and
lets a few probe requests through: success closes it, failure ejects it again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from router.config import BreakerConfig


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Module-level names for the members: on Python 3.11 each `State.OPEN` attribute lookup
# costs ~0.2 µs, and a request asks a breaker several times (~1 µs per request saved).
CLOSED, OPEN, HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN


class Breaker:
    """Health of one upstream; `allow()` before a call, `record_*()` after it."""

    def __init__(
        self,
        cfg: BreakerConfig,
        name: str = "",
        on_change: Callable[[Breaker, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.name = name
        self._on_change = on_change
        self._clock = clock
        self.state = CLOSED
        self.ejections = 0  # ejections in a row (decays after forget_after_s of health)
        self.total_ejections = 0
        self.open_until = 0.0
        self.last_ejected_at = -1e18
        self._consecutive = 0
        self._probes = 0
        self._outcomes: deque[tuple[float, bool]] = deque()

    # decisions ---------------------------------------------------------------

    def available(self) -> bool:
        """Could this upstream take a request now? (no side effects; for picking)"""
        if self.state is CLOSED:  # first: nearly every call, and `_tick` cannot change it
            return True
        self._tick()
        if self.state is HALF_OPEN:
            return self._probes < self.cfg.half_open_probes
        return False

    def allow(self) -> bool:
        """Take permission for one call (a probe while half-open)."""
        if not self.available():
            return False
        if self.state is HALF_OPEN:
            self._probes += 1
        return True

    def record_success(self) -> None:
        if self.state is HALF_OPEN:
            self._probes = max(self._probes - 1, 0)
            self._set(CLOSED)
            self._outcomes.clear()
        self._consecutive = 0
        self._outcome(True)

    def record_failure(self) -> None:
        if self.state is HALF_OPEN:
            self._probes = max(self._probes - 1, 0)
            self._eject()
            return
        if self.state is OPEN:
            return  # a call started before the ejection; already counted
        self._consecutive += 1
        self._outcome(False)
        if self._consecutive >= self.cfg.consecutive_failures or self._rate_tripped():
            self._eject()

    def snapshot(self) -> dict[str, object]:
        self._tick()
        left = max(self.open_until - self._clock(), 0.0) if self.state is OPEN else 0.0
        return {
            "state": self.state.value,
            "ejections": self.total_ejections,
            "open_for_s": round(left, 3),
        }

    # internals ---------------------------------------------------------------

    def _tick(self) -> None:
        if self.state is OPEN and self._clock() >= self.open_until:
            self._probes = 0
            self._set(HALF_OPEN)

    def _outcome(self, ok: bool) -> None:
        now = self._clock()
        self._outcomes.append((now, ok))
        edge = now - self.cfg.window_s
        while self._outcomes and self._outcomes[0][0] < edge:
            self._outcomes.popleft()

    def _rate_tripped(self) -> bool:
        n = len(self._outcomes)
        if n < self.cfg.min_requests:
            return False
        failures = sum(1 for _, ok in self._outcomes if not ok)
        return failures / n >= self.cfg.error_rate

    def _eject(self) -> None:
        now = self._clock()
        if now - self.last_ejected_at > self.cfg.forget_after_s + self.cfg.max_ejection_s:
            self.ejections = 0
        self.ejections += 1
        self.total_ejections += 1
        self.last_ejected_at = now
        duration = min(self.cfg.base_ejection_s * self.ejections, self.cfg.max_ejection_s)
        self.open_until = now + duration
        self._consecutive = 0
        self._outcomes.clear()
        self._set(OPEN, ejected=True)

    def _set(self, state: State, ejected: bool = False) -> None:
        changed = state is not self.state or ejected
        self.state = state
        if changed and self._on_change is not None:
            self._on_change(self, ejected)


class BreakerSet:
    """The breakers of every upstream, keyed by (pool, upstream), mirrored into metrics."""

    def __init__(
        self,
        cfg: BreakerConfig,
        metrics: object | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self._clock = clock
        self._breakers: dict[tuple[str, str], Breaker] = {}

    def get(self, pool: str, upstream: str) -> Breaker:
        b = self._breakers.get((pool, upstream))
        if b is None:
            b = Breaker(self.cfg, f"{pool}/{upstream}", self._mirror, self._clock)
            self._breakers[pool, upstream] = b
            self._mirror(b, False)
        return b

    # router.steps.Outlier: the pools ask before picking and report every result.
    def allow(self, pool: str, upstream: str) -> bool:
        """May `upstream` be picked now? (no side effects: pools ask this while picking)"""
        return self.get(pool, upstream).available()

    def picked(self, pool: str, upstream: str) -> None:
        """The pool chose `upstream` for a call: while half-open that call is a probe."""
        self.get(pool, upstream).allow()

    def record(self, pool: str, upstream: str, ok: bool) -> None:
        b = self.get(pool, upstream)
        if ok:
            b.record_success()
        else:
            b.record_failure()

    def reconfigure(self, cfg: BreakerConfig) -> None:
        """Apply new thresholds (SIGHUP) while keeping every breaker's state."""
        self.cfg = cfg
        for b in self._breakers.values():
            b.cfg = cfg

    def snapshot(self) -> dict[str, dict[str, object]]:
        out = {}
        for (pool, upstream), b in sorted(self._breakers.items()):
            out[f"{pool}/{upstream}"] = b.snapshot()
            self._mirror(b, False)
        return out

    def _mirror(self, b: Breaker, ejected: bool) -> None:
        m = self.metrics
        if m is None:
            return
        pool, _, upstream = b.name.partition("/")
        is_open = b.state is OPEN
        m.breaker_open.labels(pool=pool, upstream=upstream).set(1 if is_open else 0)
        if ejected and hasattr(m, "breaker_ejections"):
            m.breaker_ejections.labels(pool=pool, upstream=upstream).inc()
