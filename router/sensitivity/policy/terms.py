"""Terms: words and phrases matched whole, in scripts with spaces and without.

A term whose first (last) character is a letter or digit of a script that separates words
with spaces (Latin, Cyrillic, Greek, ...) must not continue into another such character
on that side: "Falcon" is not found in "Falconry" nor "superfalcon". Scripts written
without spaces (Han, kana, Thai, ...) have no word edges to check: "猎鹰" is found in
"猎鹰计划", and a Latin code name next to them ("项目Falcon的进度") counts as whole.
"""

from __future__ import annotations

from router.config import TermList
from router.normalize import normalize
from router.sensitivity.policy.vocabulary import Edges, Vocabulary

UNSPACED = (  # code point ranges of scripts written without spaces between words
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0xA4CF),  # CJK radicals ... CJK unified ideographs, kana, bopomofo, Yi
    (0xAC00, 0xD7AF),  # Hangul syllables (particles attach to the noun)
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions
)


def spaced_word_char(ch: str) -> bool:
    """A character that continues a word in a script written with spaces."""
    if not (ch.isalnum() or ch == "_"):
        return False
    code = ord(ch)
    return not any(low <= code <= high for low, high in UNSPACED)


def _edges(left: bool, right: bool) -> Edges:
    def edges(text: str, start: int, end: int) -> bool:
        if left and start > 0 and spaced_word_char(text[start - 1]):
            return False
        return not (right and end < len(text) and spaced_word_char(text[end]))

    return edges


EDGES = {(left, right): _edges(left, right) for left in (False, True) for right in (False, True)}


def word_edges(key: str) -> Edges:
    """The edge rule of `key`: on each side where the key ends in a spaced-script word
    character, the neighbour must not be one."""
    return EDGES[spaced_word_char(key[0]), spaced_word_char(key[-1])]


def term_key(word: str) -> str:
    """How a configured word is looked up: normalised as requests are, case-folded, its
    spaces one each (`folded` does the same to a request's text)."""
    return folded(normalize(word.strip()))


def folded(text: str) -> str:
    """Case-folded, every run of white space one space: "Blue  Heron" and "blue\nheron"
    are the term "Blue Heron". (A test for other white space in ASCII text first: most
    prompts have none, and a regex search for it cost more than the whole automaton pass.)"""
    text = text.casefold()
    if text.isascii() and not (
        "  " in text or "\n" in text or "\t" in text or "\r" in text or "\x0b" in text
        or "\x0c" in text
    ):  # fmt: skip
        return text
    return " ".join(text.split())


def add_terms(vocabulary: Vocabulary, lists: list[TermList], first_label: int) -> None:
    """Every word of `lists[i]` reports label `first_label + i`."""
    for i, terms in enumerate(lists):
        for word in terms.words:
            key = term_key(word)
            if key:
                vocabulary.add(key, first_label + i, word_edges(key))
