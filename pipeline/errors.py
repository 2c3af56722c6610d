"""User-facing errors.

A `UserError` is something the user can fix (bad recipe, missing file, unknown target).
The CLI prints its message on one line and exits with its code; it never prints a
traceback. Anything else is a bug and keeps its traceback.
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


class StageFailed(UserError):
    """A stage refused its result (e.g. the INT8 accuracy gate); exit code 1."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage}: {message}", code=1)
        self.stage = stage
