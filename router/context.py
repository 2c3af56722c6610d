"""What one request carries down the path classify → policy → admit → pick → call → respond.

Every step reads and fills this object instead of passing a growing list of arguments;
a step that needs a field of its own (admission tier, retry count, cache key) adds it here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from router.sensitivity.decision import Decision


class Api(StrEnum):
    """The proxied APIs; one handler serves all of them, parameterised by this."""

    chat = "chat"  # POST /v1/chat/completions
    completions = "completions"  # POST /v1/completions
    invocations = "invocations"  # POST /invocations (SageMaker-style, any content type)

    @property
    def upstream_path(self) -> str:
        return _UPSTREAM_PATHS[self.value]


_UPSTREAM_PATHS = {  # read on every on-prem request: one lookup, no dict built per call
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "invocations": "/invocations",
}


@dataclass
class RequestContext:
    request_id: str
    api: Api
    body: bytes
    content_type: str
    accept: str
    headers: dict[str, str]  # lower-cased request headers (never logged)
    payload: dict[str, Any] | None = None  # parsed JSON body (OpenAI APIs)
    texts: list[str] = field(default_factory=list)  # the conversation (content, prompt)
    fields: list[str] = field(default_factory=list)  # every other string of the body
    opaque: bool = False  # body could not be read as text → fail closed
    stream: bool = False
    started: float = field(default_factory=time.monotonic)
    deadline: float = 0.0  # time.monotonic() value
    decision: Decision | None = None
    route: str = ""  # onprem | sagemaker | fallback | cache
    upstream: str = ""  # the upstream that answered (metrics label, logs)
    attempts: int = 0
    tier: str = "normal"  # X-Priority tier (admission)
    routes: tuple[str, ...] = ()  # the policy's routes that exist, in order
    cache_key: str | None = None  # set while this request may fill the cache
    failed_upstreams: tuple[str, ...] = ()  # retries go elsewhere first (onprem.pick)

    def remaining(self) -> float:
        """Seconds left before the per-request deadline (≤ 0 means it has passed)."""
        return self.deadline - time.monotonic()
