"""What the rules and the model read of a request: its strings, normalised, and decoded.

Every string goes through normalize.py's one pass; each encoded run in it (encodings.py)
adds its decoded text, normalised too. The rules read all of them, and the digit-group
variants of each. The model reads the conversation (`texts`: messages, the prompt) whole,
and of the body's other strings (`fields`: tool descriptions, names, metadata, unknown
fields ...) those that are prose: with a space between two words, or outside ASCII (CJK
text has no spaces). A lone ASCII word or identifier ("user", "gpt-4o", "auto") says
nothing the model can judge; the rules still read it. The fields are joined by newlines
into one text for the rules (no rule reads a candidate across a line break), so a body's
many small keys and values cost one prefilter pass.
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
    rest = [form for field in fields for form in forms(field)]
    if rest:
        joined = "\n".join(rest)
        rules.append(joined)
        rules.extend(digit_variants(joined))
        prose.extend(form for form in rest if PROSE.search(form))
    return View(rules, prose)


def forms(text: str) -> list[str]:
    """`text` normalised, then each text decoded from it, normalised."""
    plain = normalize(text)
    return [plain, *(normalize(inner) for inner in decoded(plain))]
