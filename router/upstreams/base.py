"""The contract every pool keeps, so the handler, the retry step and the fallback treat them alike.

A pool picks one of its upstreams and calls it (`send`). It answers with an `UpstreamReply`
(status, headers, and either the whole body or an async byte stream that was already
started: the upstream said yes before the router commits to a response), or raises
`UpstreamFailure` before any byte reached the caller. A failure says whether another
attempt/pool may take the request (`retryable`) and the HTTP answer to give if none does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from router.context import RequestContext

# Statuses that mean "the request did not run, or the upstream said not now": safe to repeat.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


@dataclass
class UpstreamReply:
    status: int
    content_type: str
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)  # extra headers to pass on
    upstream: str = ""


class UpstreamFailure(Exception):
    """The upstream could not serve the request; nothing was sent to the caller yet.

    `status`/`kind`/`message` are what the caller gets if no other route takes it;
    `retryable` marks failures that are safe to repeat elsewhere (connect errors, 502/503/504,
    throttling); `retry_after` is the upstream's own hint in seconds.
    """

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        upstream: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream = upstream


class StreamBroken(Exception):
    """A started stream failed (the upstream closed or went silent mid-answer, sent a bad or
    oversized chunk, SageMaker's ModelStreamError). Raised by a reply's stream after its
    last good chunk (and, for SSE, an `error_event`): it aborts the answer, which then ends
    without its terminating chunk, so no client can take a truncated answer for a whole one
    (the openai SDK raises on the error event, and on the cut)."""


class Pool(Protocol):
    name: str  # route label: onprem | sagemaker (| fallback)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def usable(self) -> bool:
        """True if at least one upstream may take a request now (readiness, policy)."""
        ...

    async def send(self, ctx: RequestContext) -> UpstreamReply: ...
