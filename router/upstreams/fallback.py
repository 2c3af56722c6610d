"""The fallback route: a smaller model, taken when the primary pools are busy or broken.

Why one route with two pools: the fallback must keep the sensitivity class. A
confidential request may only reach the *confidential* fallback, which is configured as
on-prem servers (the same schema as the on-prem pool, and never SageMaker); a public one
only the public fallback. The policy lists `fallback` last for both classes, so it is
tried only after the primary routes refused (admission spill, no healthy upstream,
retries spent). Answers carry `X-Route: fallback`.
"""

from __future__ import annotations

from typing import Any

from router.upstreams.base import UpstreamFailure, UpstreamReply
from router.upstreams.onprem import OnPremPool

ROUTE = "fallback"


class FallbackPool:
    """Dispatches by sensitivity to the fallback pool of the request's own class."""

    name = ROUTE

    def __init__(self, confidential: Any | None, public: Any | None) -> None:
        self.confidential = confidential
        self.public = public

    def _members(self) -> list[Any]:
        return [p for p in (self.confidential, self.public) if p is not None]

    def inherit(self, old: FallbackPool) -> None:
        """Each class's pool keeps the health of the upstreams it shares with `old`'s."""
        for mine, theirs in ((self.confidential, old.confidential), (self.public, old.public)):
            if mine is not None and theirs is not None:
                mine.inherit(theirs)

    async def start(self) -> None:
        for pool in self._members():
            await pool.start()

    async def close(self) -> None:
        for pool in self._members():
            await pool.close()

    def usable(self) -> bool:
        return any(p.usable() for p in self._members())

    def pool_for(self, ctx: Any) -> Any | None:
        decision = getattr(ctx, "decision", None)
        confidential = decision is None or decision.confidential  # unknown → confidential
        return self.confidential if confidential else self.public

    async def send(self, ctx: Any) -> UpstreamReply:
        pool = self.pool_for(ctx)
        if pool is None or not pool.usable():
            raise UpstreamFailure(
                503, "no_upstream_available", "no fallback upstream for this request",
                retryable=False, retry_after=1.0,
            )  # fmt: skip
        return await pool.send(ctx)


def build_fallback(config: Any, metrics: Any, outlier: Any) -> FallbackPool | None:
    """The fallback route for `config.fallback`, or None when none is configured."""
    fb = getattr(config, "fallback", None)
    if fb is None or (fb.confidential is None and fb.public is None):
        return None
    bounds = {"timeouts": config.timeouts, "responses": config.responses}
    conf = OnPremPool(fb.confidential, metrics, outlier, name="fallback-confidential",
                      **bounds) if fb.confidential is not None else None  # fmt: skip
    pub = OnPremPool(fb.public, metrics, outlier, name="fallback-public",
                     **bounds) if fb.public is not None else None  # fmt: skip
    return FallbackPool(conf, pub)
