"""Allowed values: published numbers and names (a support line, documented test cards,
a public product that shares a code name's word) that no rule may flag.

Applied after detection: only a request some rule flagged is looked at again, with every
allowed value in it blanked out; what still fires decides. So a value is allowed only as
itself (whole, between non-alphanumeric neighbours, and not continued by another digit
group): a secret written next to it, or a longer number that begins with it, still fires.
Values match case-insensitively and with any separators between their letter and digit
groups ("+1 800 555 0100" also as "1-800-555-0100" and "18005550100", as the detectors
read numbers). The header rule comes before all of this, and the model reads the text as
it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from router.normalize import normalize

SEPARATORS = r"[ \t\-./()+]{0,3}"


def _value_pattern(value: str) -> str:
    groups = re.findall(r"[^\W_]+", normalize(value))
    return SEPARATORS.join(re.escape(group) for group in groups)


class Allow:
    def __init__(self, values: Sequence[str]) -> None:
        alternatives = "|".join(sorted({_value_pattern(v) for v in values}, key=len, reverse=True))
        self.pattern = re.compile(
            rf"(?<![^\W_])(?<!\d[ \t\-./])(?:{alternatives})(?![^\W_])(?![ \t\-./]\d)",
            re.IGNORECASE,
        )

    def masked(self, texts: Sequence[str]) -> list[str] | None:
        """`texts` with every allowed value blanked, or None when none holds one."""
        if not any(self.pattern.search(text) for text in texts):
            return None
        return [self.pattern.sub(" ", text) for text in texts]
