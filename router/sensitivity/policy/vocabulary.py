"""One Aho-Corasick automaton (pyahocorasick) over every configured word and domain.

Matching is on the case-folded normalised text (`str.casefold`), so "FALCON", "Falcon"
and full-width "Ｆａｌｃｏｎ" (NFKC, normalize.py) are one term. The automaton reports
every occurrence in one linear pass whatever the number of keys (10,000 terms cost what
10 do); each occurrence is then kept or dropped by its key's edge rule (`Edges`), which
is where words and domains differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ahocorasick

Edges = Callable[[str, int, int], bool]
"""Whether the occurrence `text[start:end]` (case-folded text) stands on its own."""


class Vocabulary:
    def __init__(self) -> None:
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        self._entries: dict[str, list[tuple[int, Edges]]] = {}

    def add(self, key: str, label: int, edges: Edges) -> None:
        """Report `label` where `key` (already case-folded) occurs and `edges` accept it."""
        self._entries.setdefault(key, []).append((label, edges))

    def compile(self) -> None:
        for key, entries in self._entries.items():
            self._automaton.add_word(key, (len(key), tuple(entries)))
        if self._entries:
            self._automaton.make_automaton()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def labels(self, folded: str, wanted: int) -> set[int]:
        """Labels whose keys occur in `folded` on their own; stops once `wanted` are found."""
        found: set[int] = set()
        for start, end, label, edges in self._occurrences(folded):
            if label not in found and edges(folded, start, end):
                found.add(label)
                if len(found) >= wanted:
                    break
        return found

    def _occurrences(self, folded: str) -> Iterator[tuple[int, int, int, Edges]]:
        for last, (length, entries) in self._automaton.iter(folded):
            for label, edges in entries:
                yield last + 1 - length, last + 1, label, edges
