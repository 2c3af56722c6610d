"""Long texts for work that holds the GIL, in slices.

A thread keeps the event loop serving only while it lets go of the GIL, and the C code of
the detectors (RE2's Set, Python's `re`) does not while it runs: one scan of 6 MB held
it for the whole scan, so every other request waited. Scanned in slices of `SLICE_CHARS`,
the loop gets its turn between two slices. Slices overlap by `OVERLAP_CHARS`, more than
any detector's match and its context, so a match that crosses a slice border is still
whole in one slice; a slice's edges can only add a finding (a lookbehind at a cut), never
hide one: the result fails closed.
"""

from __future__ import annotations

from collections.abc import Iterator

SLICE_CHARS = 32 * 1024
OVERLAP_CHARS = 4 * 1024


def slices(text: str, size: int = SLICE_CHARS, overlap: int = OVERLAP_CHARS) -> Iterator[str]:
    """`text` in windows of `size` characters, each starting `size - overlap` after the last."""
    if len(text) <= size:
        yield text
        return
    step = size - overlap
    for start in range(0, len(text) - overlap, step):
        yield text[start : start + size]
