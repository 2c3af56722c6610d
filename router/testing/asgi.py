"""ASGI plumbing shared by the wire-protocol test doubles."""

from __future__ import annotations


async def answered_lifespan(scope, receive, send) -> bool:
    """Serve a whole lifespan conversation; False for any other scope (handle it yourself)."""
    if scope["type"] != "lifespan":
        return False
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
    return True
