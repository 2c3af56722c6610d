"""Errors the router answers with: an HTTP status, a short JSON body, maybe Retry-After.

Raised anywhere on the request path and turned into a response in one place
(`router.respond.error_response`), so every refusal has the same shape:
`{"error": {"type": ..., "message": ...}}` (OpenAI's error format). Messages never quote
the request body.
"""

from __future__ import annotations


class RouterError(Exception):
    def __init__(
        self, status: int, kind: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


def bad_request(message: str, kind: str = "invalid_request_error") -> RouterError:
    return RouterError(400, kind, message)


def no_route(message: str, retry_after: float = 1.0) -> RouterError:
    """503 + Retry-After: nothing that may take this request can take it now."""
    return RouterError(503, "no_upstream_available", message, retry_after)
