"""Text hidden in a transport encoding: base64 and percent-encoding runs that decode to text,
and `\\uXXXX` escapes (a JSON record inside a string or a decoded run).

An app that logs a JSON record as base64, or a URL with its query string, sends the
upstream model text it can read back; the rules must read it too. A run decodes only if
its bytes are UTF-8 text without control characters (a hash or a random token decodes to
binary and is left alone). Decoded text may itself hold an encoded run (base64 of a URL):
`MAX_DEPTH` levels are unwrapped. Each decoded text is shorter than its run, so the work
stays linear in the input.
"""

from __future__ import annotations

import binascii
import json
import re
from urllib.parse import unquote_to_bytes

BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")  # standard and URL-safe alphabets
# One or more %XX. Starting only where a run can start (after whitespace or "%") and with
# possessive repeats, a search is linear in the text and keeps no backtracking state per
# %XX (the plain `[^\s%]*(?:%XX[^\s%]*)+` is quadratic on a long word and its stack grows
# with every %XX: docs/decisions/006-huge-requests.md). ESCAPES is possessive for
# the same reason; neither could match more by giving characters back.
PERCENT_RUN = re.compile(r"(?<![^\s%])[^\s%]*+(?:%[0-9A-Fa-f]{2}[^\s%]*+)++")
URL_SAFE = str.maketrans("-_", "+/")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ESCAPES = re.compile(r"(?:\\u[0-9A-Fa-f]{4})++")
MAX_DEPTH = 2


def decoded(text: str, depth: int = MAX_DEPTH, escapes: bool = True) -> list[str]:
    """Every text decoded from a run in `text`, then from runs in those (`depth` levels).
    `escapes`: `text` with its escapes read is one of them (the others are each a run's)."""
    escaped = escapes and "\\u" in text
    if depth <= 0 or not (escaped or "%" in text or BASE64_RUN.search(text)):
        return []
    out = []
    if escaped and (found := unescaped(text)) is not None:
        out.append(found)
    for run in BASE64_RUN.findall(text):
        found = _text(_base64(run))
        if found is not None:
            out.append(found)
    for run in PERCENT_RUN.findall(text) if "%" in text else ():
        found = _text(_unquote(run))
        if found is not None:
            out.append(found)
    return out + [inner for found in out for inner in decoded(found, depth - 1)]


def unescaped(text: str) -> str | None:
    """`text` with its `\\uXXXX` escapes read, when that changes it and gives text."""
    found = _text(ESCAPES.sub(_unescape, text).encode("utf-8", "replace"))
    return None if found is None or found == text else found


def _unescape(run: re.Match[str]) -> str:
    """A run of escapes as JSON reads it (surrogate pairs joined; a lone one is dropped)."""
    return json.loads(f'"{run.group()}"').encode("utf-8", "ignore").decode("utf-8")


def _base64(run: str) -> bytes:
    run = run.rstrip("=").translate(URL_SAFE)
    run = run[: len(run) - len(run) % 4 if len(run) % 4 == 1 else len(run)]
    try:
        return binascii.a2b_base64(run + "=" * (-len(run) % 4), strict_mode=True)
    except binascii.Error:
        return b""


def _unquote(run: str, size: int = 64 * 1024) -> bytes:
    """The bytes of a percent run, `size` characters at a time (cut before a "%", so no
    %XX is split): unquote_to_bytes makes an object per %XX, which for a run of megabytes
    is many times its size at once."""
    out = []
    start = 0
    while start < len(run):
        end = run.find("%", start + size) if len(run) - start > size else -1
        end = len(run) if end < 0 else end
        out.append(unquote_to_bytes(run[start:end].replace("+", " ")))
        start = end
    return b"".join(out)


def _text(data: bytes) -> str | None:
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if CONTROL.search(text) else text
