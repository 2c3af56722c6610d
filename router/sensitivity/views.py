"""What the rules and the model read of a request: its strings, normalised, and decoded.

Every string goes through normalize.py's one pass; each encoded run in it (encodings.py)
adds its decoded text, normalised too. The rules read all of them, and the digit-group
variants of each. The model reads the conversation (`texts`: messages, the prompt) whole,
and of the body's other strings (`fields`: tool descriptions, names, metadata, unknown
fields ...) those that are prose (with a space between two words, or outside ASCII: CJK
text has no spaces), and the text decoded from any of them. A lone ASCII word or
identifier ("user", "gpt-4o", "auto") says nothing the model can judge; the rules still
read it. The fields are joined by newlines into one text (no rule reads a candidate, and
no encoded run continues, across a line break), so a body's many small keys and values
cost one pass of each step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from router.sensitivity.encodings import decoded
from router.sensitivity.normalize import digit_variants, normalize

PROSE = re.compile(r"\S\s+\S|[^\x00-\x7f]")


@dataclass(frozen=True)
class View:
    rules: list[str]  # what the detectors read
    prose: list[str]  # what the model reads, in order


def read(texts: Sequence[str], fields: Sequence[str] = ()) -> View:
    rules: list[str] = []
    prose: list[str] = []
    for text in texts:
        for form in forms(text):
            rules.append(form)
            rules.extend(digit_variants(form))
            prose.append(form)
    if fields:  # normalised and decoded as one text: no run or rule spans a line break
        joined = forms("\n".join(fields))
        for form in joined:
            rules.append(form)
            rules.extend(digit_variants(form))
        prose.extend(normalize(field) for field in fields if _prose(field))
        prose.extend(form for form in joined[1:] if _prose(form))
    return View(rules, prose)


def _prose(text: str) -> bool:
    """PROSE.search, skipped for the many keys and identifiers it cannot match."""
    if text.isascii() and " " not in text and "\n" not in text and "\t" not in text:
        return False
    return PROSE.search(text) is not None


def forms(text: str) -> list[str]:
    """`text` normalised, then each text decoded from it, normalised."""
    plain = normalize(text)
    return [plain, *(normalize(inner) for inner in decoded(plain))]
