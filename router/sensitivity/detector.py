"""One detector = a regex for candidates, a validator that can reject a candidate (checksum,
number rules), and optional context words that must appear near it (Presidio's recognizer
shape). Detectors only say *whether* something is present; the label is all that leaves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


def _always(_: str) -> bool:
    return True


@dataclass(frozen=True)
class Detector:
    label: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] = _always  # gets the candidate text (group "v" or whole)
    context: re.Pattern[str] | None = None  # must match within `window` chars of the candidate
    window: int = 60

    def found(self, text: str) -> bool:
        for match in self.pattern.finditer(text):
            value = match.group("v") if "v" in self.pattern.groupindex else None
            value = value or match.group(0)
            if not self.validate(value):
                continue
            if self.context is None or self._in_context(text, match.start(), match.end()):
                return True
        return False

    def _in_context(self, text: str, start: int, end: int) -> bool:
        near = text[max(0, start - self.window) : end + self.window]
        return self.context is not None and self.context.search(near) is not None


def digits(value: str) -> str:
    """Only the digits of a candidate (cards and accounts are written with spaces/dashes)."""
    return "".join(ch for ch in value if ch.isdigit())


@dataclass(frozen=True)
class AnyOf:
    """One label, several recognizers (e.g. secret: AWS keys, JWTs, private keys, ...)."""

    label: str
    parts: tuple[Detector, ...]

    def found(self, text: str) -> bool:
        return any(part.found(text) for part in self.parts)
