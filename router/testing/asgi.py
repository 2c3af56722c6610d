"""ASGI plumbing and scripting shared by the wire-protocol test doubles."""

from __future__ import annotations

import random
import threading
from typing import TypeVar

T = TypeVar("T")


async def answered_lifespan(scope, receive, send) -> bool:
    """Serve a whole lifespan conversation; False for any other scope (handle it yourself)."""
    if scope["type"] != "lifespan":
        return False
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
    return True


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class Outcomes:
    """What a double answers next: the test's queued outcomes first, then `failure` at
    `rate`, drawn from a seeded generator so that a run can be repeated."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def next(self, queued: list[T], rate: float, failure: T, ok: T) -> T:
        with self._lock:
            if queued:
                return queued.pop(0)
            if rate and self._rng.random() < rate:
                return failure
            return ok
