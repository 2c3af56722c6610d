"""One detector = a regex for candidates, a validator that can reject a candidate (checksum,
number rules), and optional context words that must appear near it (Presidio's recognizer
shape). Detectors only say *whether* something is present; the label is all that leaves.
`requires` makes them cheap: prefilter.py runs `found()` only on texts that contain them.
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
    # RE2 patterns (hints.py) that every text this detector fires on contains, all of them:
    # the prefilter skips `found()` when one is absent (empty: always run)
    requires: tuple[str, ...] = ()

    def found(self, text: str) -> bool:
        # No "three digits?" pre-check: `requires` implies one, and the prefilter runs this
        # only where they are present (2.2k instructions per eval text on sure successes).
        # The whole-text context search is not just a shortcut: a window cut mid-word
        # ("t|he") can look like context, and this keeps such texts from firing.
        if self.context is not None and self.context.search(text) is None:
            return False
        for match in self.pattern.finditer(text):
            # context first: a short regex on a window is cheaper than most validators
            if self.context is not None and not self._in_context(text, match.start(), match.end()):
                continue
            value = match.group("v") if "v" in self.pattern.groupindex else None
            if self.validate(value or match.group(0)):
                return True
        return False

    def _in_context(self, text: str, start: int, end: int) -> bool:
        near = text[max(0, start - self.window) : end + self.window]
        return self.context is not None and self.context.search(near) is not None


# FIRST_CHAR (comment on a pattern): its "not preceded by" lookbehind sits after the first
# character, `X(?<![C]X)` instead of `(?<![C])X`. Same matches (X is known to be there), but
# `re` can then jump from one possible first character to the next instead of trying the
# lookbehind at every position: card's scan of 1 MB went from 52 to 12 ms. Each rewrite is
# checked against the pattern it replaced in tests/test_router_prefilter.py.


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
