"""Work on huge inputs off the event loop: a thread for long reads, long texts in slices.

A thread keeps the event loop serving only while it lets go of the GIL, and the C code of
the detectors (RE2's Set, Python's `re`) does not while it runs: one scan of 6 MB held
it for the whole scan, so every other request waited. Scanned in slices of `SLICE_CHARS`,
the loop gets its turn between two slices. Slices overlap by `OVERLAP_CHARS`, more than
any detector's match and its context, so a match that crosses a slice border is still
whole in one slice; a slice's edges can only add a finding (a lookbehind at a cut), never
hide one: the result fails closed.

`in_thread` runs a long read (a huge body's parse and walk) in the process's one thread for
them; it holds the GIL too, but in steps short enough for the loop to take its turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

SLICE_CHARS = 32 * 1024
OVERLAP_CHARS = 4 * 1024
T = TypeVar("T")
_reader: ThreadPoolExecutor | None = None


async def in_thread(fn: Callable[..., T], *args) -> T:
    """`fn(*args)` in the process's one thread for long reads (a huge body's parse): several
    at once queue there rather than take more of the CPU from the event loop."""
    global _reader
    if _reader is None:
        _reader = ThreadPoolExecutor(1, thread_name_prefix="read")
    return await asyncio.get_running_loop().run_in_executor(_reader, fn, *args)


def slices(text: str, size: int = SLICE_CHARS, overlap: int = OVERLAP_CHARS) -> Iterator[str]:
    """`text` in windows of `size` characters, each starting `size - overlap` after the last."""
    if len(text) <= size:
        yield text
        return
    step = size - overlap
    for start in range(0, len(text) - overlap, step):
        yield text[start : start + size]
