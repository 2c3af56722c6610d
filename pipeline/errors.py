"""The build's own error: a stage that refuses its result.

User errors in general are `router.errors.UserError` (one line, exit code, no traceback),
shared by both CLIs.
"""

from __future__ import annotations

from router.errors import UserError


class StageFailed(UserError):
    """A stage refused its result (e.g. the INT8 accuracy gate); exit code 1."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"stage {stage}: {message}", code=1)
        self.stage = stage
