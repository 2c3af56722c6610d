"""One Aho-Corasick automaton (ahocorasick-rs, the Rust `aho-corasick` crate) over every
configured word and domain.

Matching is on the case-folded normalised text (`terms.folded`), so "FALCON", "Falcon"
and full-width "Ｆａｌｃｏｎ" (NFKC, normalize.py) are one term. The automaton reports
every occurrence, overlapping ones included, in one linear pass whatever the number of
keys (10,000 terms cost what 10 do); each occurrence is then kept or dropped by its key's
edge rule (`Edges`), which is where words and domains differ. Up to `DFA_KEYS` keys it is
a DFA (fastest: ~7 MB for 10,000 terms); past that a contiguous NFA (a DFA of 100,000
keys took 270 MB).
"""

from __future__ import annotations

from collections.abc import Callable

import ahocorasick_rs

Edges = Callable[[str, int, int], bool]
"""Whether the occurrence `text[start:end]` (case-folded text) stands on its own."""
DFA_KEYS = 20_000


class Vocabulary:
    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[int, Edges]]] = {}
        self._keys: list[tuple[tuple[int, Edges], ...]] = []
        self._automaton: ahocorasick_rs.AhoCorasick | None = None

    def add(self, key: str, label: int, edges: Edges) -> None:
        """Report `label` where `key` (already case-folded) occurs and `edges` accept it."""
        self._entries.setdefault(key, []).append((label, edges))

    def compile(self) -> None:
        if not self._entries:
            return
        kind = ahocorasick_rs.Implementation
        impl = kind.DFA if len(self._entries) <= DFA_KEYS else kind.ContiguousNFA
        self._automaton = ahocorasick_rs.AhoCorasick(list(self._entries), implementation=impl)
        self._keys = [tuple(entries) for entries in self._entries.values()]

    def __bool__(self) -> bool:
        return self._automaton is not None

    def labels(self, folded: str) -> set[int]:
        """Labels whose keys occur in `folded` on their own."""
        found: set[int] = set()
        if self._automaton is None:
            return found
        for key, start, end in self._automaton.find_matches_as_indexes(folded, overlapping=True):
            for label, edges in self._keys[key]:
                if label not in found and edges(folded, start, end):
                    found.add(label)
        return found
