"""Building blocks for prefilter hints: RE2 patterns that every match of a detector's Python
`re` pattern must contain, so a text without the hint provably cannot fire the detector.

A hint is the detector's pattern with the parts RE2 cannot express or that only narrow a
match removed (lookarounds, `\\b`, validators), which can only widen what it matches. Two
engine differences would break that superset and are handled here, each checked
exhaustively over every code point in tests/test_router_prefilter.py:
- Python's `\\d` is any Unicode decimal digit; RE2's `\\d` is ASCII only → `DIGIT`.
- Python's `(?i)` also folds "ı" and "İ" onto i, "ſ" onto s and the Kelvin sign onto k;
  `ci()` spells every letter as the class of exactly what Python's `(?i)` accepts.
- Python's `\\s` is Unicode whitespace; RE2's is ASCII → `SPACE`.
Lookarounds matter for precision (a 13-digit run inside an 18-digit ID is no card):
`fenced()` turns them into consuming `(?:^|[^…])` / `(?:[^…]|$)` over their ASCII part only,
which rejects no character that the Python lookaround accepts.

All hints share one DFA, so they must stay DFA-friendly: a counted repeat over digits with
optional separators (`(?:[ -]?\\d){5,19}`, `[\\d ().-]{6,18}`) lets a new candidate start at
every digit, and the DFA's states become subsets of counter positions: 1 MB of digits and
spaces took RE2 8 s (Unicode digits 23 s). Hints therefore use short fixed counts, and a
leading fence where a run of digits could otherwise restart at every one of them (long
texts use a set without counted repeats: `prefilter.present`).
"""

from __future__ import annotations

import re

DIGIT = r"\p{Nd}"  # Python's Unicode `\d` (Numeric_Type=Decimal is exactly category Nd)

# Python's `\s` for str patterns, every code point of it (checked against `re` in the tests)
SPACE = r"[\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"

# What Python's `(?i)` accepts for each ASCII letter beyond its two ASCII cases.
FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def ci(pattern: str) -> str:
    """`pattern` matched the way Python's `(?i)` matches it: each ASCII letter becomes a class
    of every character Python folds onto it. Letters must be plain literals (no `\\w`-style
    escapes, no `[...]` classes), which is all the hints need and keeps this provable."""
    if "[" in pattern or re.search(r"\\[A-Za-z]", pattern):
        raise ValueError(f"ci() takes literal letters only: {pattern!r}")

    def letter(m: re.Match[str]) -> str:
        low = m.group(0).lower()
        return f"[{low}{low.upper()}{FOLDS.get(low, '')}]"

    return f"(?:{re.sub(r'[A-Za-z]', letter, pattern)})"  # a group: safe to concatenate


def exact(*literals: str) -> str:
    """Case-sensitive literals (CJK words, token prefixes), any of them."""
    return "|".join(re.escape(lit) for lit in literals)


def any_of(*patterns: str) -> str:
    """One hint that is present when any of `patterns` is."""
    return "|".join(f"(?:{p})" for p in patterns)


WORD = "0-9A-Za-z_"  # ASCII `\w`, all of it inside Python's Unicode `\w`


def words(pattern: str) -> str:
    """`(?i)\\b(pattern)\\b` as a hint: `ci(pattern)` between characters outside ASCII `\\w`
    (or the text's edges). Python's `\\b` next to a word's first or last letter needs a
    neighbour outside its Unicode `\\w`, which is then outside ASCII `\\w` too, so the hint
    stays implied; and "he" in "the", "me" in "some", "tel" in "hotel" no longer make a
    context detector run. Every alternative must start and end with a letter, and be
    listed whole ("telephone", not just "tel")."""
    return fenced(ci(pattern), WORD, WORD)


def fenced(core: str, before: str, after: str | None = None) -> str:
    """`core` preceded by text start or a char outside `before`, followed by one outside
    `after` or text end (no trailing fence when None): the pattern's `(?<![…])` / `(?![…])`
    with only their ASCII ranges given (so RE2 refuses no char Python would accept there)."""
    tail = "" if after is None else f"(?:[^{after}]|$)"
    return f"(?:^|[^{before}])(?:{core}){tail}"
