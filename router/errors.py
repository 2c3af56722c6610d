"""Errors: `UserError` for input a person can fix, `RouterError` for refused requests.

A `UserError` is something the user can fix (bad recipe or router config, missing file,
unknown target). The CLIs (edgepack's and the router's) print its message on one line and
exit with its code; they never print a traceback. Anything else is a bug and keeps its
traceback. Both packages import it from here: the router is the lower of the two.

A `RouterError` is what the router answers with: an HTTP status, a short JSON body, maybe
Retry-After. Raised anywhere on the request path and turned into a response in one place
(`router.respond.error_response`), so every refusal has the same shape:
`{"error": {"type": ..., "message": ...}}` (OpenAI's error format). Messages never quote
the request body.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user caused and can fix; printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


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
