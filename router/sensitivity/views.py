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

A long text is read a piece at a time (`parts`), so that no step makes a copy of the whole
text, nor holds the GIL for a pass over all of it. `pieces` cuts it where the pieces,
normalised, decoded and tokenized one by one, give what the whole text gives: after
whitespace (no encoded run contains any, NFKC never joins across it, the tokenizer splits
there), else, in a long stretch without any, beside a character that normalises to
punctuation or a CJK ideograph (the tokenizer splits there too; no base64 or \\u run
goes on across it), before a character NFKC starts anew at, and away from any "%" (a
percent run goes on across punctuation). The rules read each piece after the last
`OVERLAP_CHARS` of the one before it, so anything of that length (every detector's match
with its context) lies whole in what they read once.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from router.normalize import digit_variants, normalize
from router.offload import OVERLAP_CHARS
from router.sensitivity.encodings import MAX_DEPTH, decoded, unescaped

PROSE = re.compile(r"\S\s+\S|[^\x00-\x7f]")
PIECE_CHARS = 32 * 1024
WHITESPACE = " \n\t\r"
OUTSIDE_RUNS = re.compile(r"[^A-Za-z0-9+/_=\\-]")  # no base64 or \u run continues past it
PERCENT = re.compile("[%\ufe6a\uff05]")  # what NFKC makes a "%" of


@dataclass(frozen=True)
class View:
    rules: list[str]  # what the detectors read
    prose: list[str]  # what the model reads, in order


@dataclass(frozen=True)
class Part:
    """One piece of a request as the steps read it."""

    rules: list[str]  # the detectors' texts
    prose: list[tuple[int, str]]  # (n, piece) for the model; the pieces of one n are one text


def read(texts: Sequence[str], fields: Sequence[str] = ()) -> View:
    """The whole view at once: what `parts` gives a piece at a time, for a request short
    enough to be one piece per text (a single pass, the cheapest on the event loop)."""
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


def parts(texts: Sequence[str], fields: Sequence[str] = ()) -> Iterator[Part]:
    """The request's `Part`s in order: the conversation, then the fields."""
    numbers = itertools.count()
    size = PIECE_CHARS
    for text in texts:
        yield from _parts(text, numbers, size, True, _always)
    if fields:
        for field in fields:
            if _prose(field):
                n = next(numbers)
                for piece in pieces(field, size):
                    yield Part([], [(n, normalize(piece))])
        # normalised and decoded as one text: no run or rule spans a line break
        yield from _parts("\n".join(fields), numbers, size, False, _prose)


def _parts(
    text: str,
    numbers: Iterator[int],
    size: int,
    model_reads: bool,
    model_reads_decoded: Callable[[str], bool] | None = None,
) -> Iterator[Part]:
    """`text` piece by piece; the texts decoded from a piece follow it, each normalised
    whole (as `forms` does: it is no longer than the run it came from) and not decoded
    again (`decoded` unwraps nested runs itself). The text with its escapes read is the
    whole text again, so a piece's is read from the piece after the tail of the one before
    (a passage across the cut is whole in one of them), where each run's text is the
    run's own piece's. `model_reads_decoded`: whether the model reads a decoded text; None
    for a text that is itself decoded."""
    n = next(numbers) if model_reads else None
    tail = ""
    for piece in pieces(text, size):
        plain = normalize(piece)
        seen = tail + plain if tail else plain
        yield Part([seen, *digit_variants(seen)], [] if n is None else [(n, plain)])
        tail = seen[-OVERLAP_CHARS:] if len(seen) > OVERLAP_CHARS else seen
        if model_reads_decoded is None:
            continue
        inner = decoded(plain, escapes=False)
        if "\\u" in seen and (found := unescaped(seen)) is not None:
            inner += [found, *decoded(found, MAX_DEPTH - 1)]
        for found in inner:
            found = normalize(found)
            yield from _parts(found, numbers, size, model_reads_decoded(found))


def _always(_: str) -> bool:
    return True


def _prose(text: str) -> bool:
    """PROSE.search, skipped for the many keys and identifiers it cannot match."""
    if text.isascii() and " " not in text and "\n" not in text and "\t" not in text:
        return False
    return PROSE.search(text) is not None


def forms(text: str) -> list[str]:
    """`text` normalised, then each text decoded from it, normalised."""
    plain = normalize(text)
    return [plain, *(normalize(inner) for inner in decoded(plain))]


def pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """`text` in pieces that join back to it, of about `size` characters: longer only where
    a long word offers no cut (see the module doc)."""
    start = 0
    while len(text) - start > size:
        span = size
        end = _cut(text, start + span // 2, start + span)
        while end is None and start + span < len(text):  # a long word without a cut
            span *= 2
            end = _cut(text, start + span // 2, start + span)
        if end is None:
            break
        yield text[start:end]
        start = end
    yield text[start:]


def _cut(text: str, lo: int, hi: int) -> int | None:
    """A position in (lo, hi] to cut `text` at, or None."""
    space = max(text.rfind(c, lo, hi) for c in WHITESPACE)
    if space >= lo:
        return space + 1
    if PERCENT.search(text, max(0, lo - OVERLAP_CHARS), hi + OVERLAP_CHARS):
        return None  # a percent run's decoded text could span the cut
    for match in OUTSIDE_RUNS.finditer(text, lo, hi):  # the candidates, as they come
        at = match.start()
        plain = normalize(text[at])
        if not plain:
            continue
        if at > lo and _ends_words(plain[0]) and _starts_anew(text[at]):
            return at  # before it
        if at + 1 < len(text) and _ends_words(plain[-1]) and _starts_anew(text[at + 1]):
            return at + 1  # after it
    return None


def _ends_words(char: str) -> bool:
    """No encoded run goes on across `char` (normalised), and the tokenizer starts a new
    word at it and after it anyway (BERT's pre-tokenizer: punctuation, CJK ideographs), so
    the pieces' tokens are the whole text's."""
    if OUTSIDE_RUNS.match(char) is None:
        return False
    if char.isascii():
        return not char.isalnum()
    return unicodedata.category(char).startswith("P") or "\u4e00" <= char <= "\u9fff"


def _starts_anew(char: str) -> bool:
    """NFKC of a text cut before `char` is NFKC of each side: what `char` decomposes to
    starts with a character that nothing before it combines with (not a mark, not a
    conjoining Hangul jamo)."""
    if char.isascii():
        return True
    head = unicodedata.normalize("NFKD", char)[0]
    return (
        unicodedata.combining(head) == 0
        and not unicodedata.category(head).startswith("M")
        and not "\u1100" <= head <= "\u11ff"
    )
