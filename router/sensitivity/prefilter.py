"""One RE2 pass per text decides which detectors need their full (Python `re`) check.

Every detector part declares `requires`: RE2 patterns that every text it fires on contains
(see hints.py for why they are supersets). One `RE2::Set` holds all of them and reports in a
single linear-time pass which are present; a part runs its unchanged `found()` only when all
of its patterns are. Parts without `requires` (and recognizers of other shapes) always run.

Measured on the eval split (500 texts, avg 93 chars, loadavg ~1, one core of this machine):
RE2 Set over ~30 hint patterns 1.4 µs per text; the same hints as one Python `re`
alternation 28 µs (search) to 40 µs (findall), more than the whole 25 µs detector budget,
hence google-re2. A 1 MB text takes the Set ~6 ms.

Fail closed: the Python binding drops RE2's error flag (a DFA out of memory returns an
empty match list), so the Set also holds an always-matching canary; a result without it
means "unknown", and every part runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import re2

from router.sensitivity.detector import AnyOf

CANARY = "(?:)"  # matches every text, so a successful pass always reports it


class Recognizer(Protocol):
    label: str

    def found(self, text: str) -> bool: ...


Part = tuple[Callable[[str], bool], frozenset[int]]  # found(), indices that must be present


class Prefilter:
    def __init__(self, recognizers: Sequence[Recognizer], max_mem: int = 64 << 20) -> None:
        self.recognizers = list(recognizers)
        index: dict[str, int] = {CANARY: 0}
        self.plans: list[tuple[str, tuple[Part, ...]]] = []
        for rec in self.recognizers:
            parts = rec.parts if isinstance(rec, AnyOf) else (rec,)
            plan = []
            for part in parts:
                needed = [index.setdefault(p, len(index)) for p in getattr(part, "requires", ())]
                plan.append((part.found, frozenset(needed)))
            self.plans.append((rec.label, tuple(plan)))
        options = re2.Options()
        options.max_mem = max_mem
        options.log_errors = False
        self.set = re2.Set.SearchSet(options)
        for pattern in index:  # dicts keep insertion order: index i is the i-th added
            self.set.Add(pattern)
        self.set.Compile()
        self.everything = frozenset(index.values())
        self.fallbacks = 0  # passes whose result was unknown (all parts ran)

    def present(self, text: str) -> frozenset[int]:
        """Indices of the hint patterns `text` contains (all of them when RE2 failed)."""
        found = self.set.Match(text.encode("utf-8", "surrogatepass"))
        if not found or 0 not in found:
            self.fallbacks += 1
            return self.everything
        return frozenset(found)

    def scan(self, texts: Sequence[str]) -> tuple[str, ...]:
        """Labels that fire on any text, in recognizer order (same as checking every one)."""
        present = [self.present(t) for t in texts]
        return tuple(
            label
            for label, plan in self.plans
            if any(
                need <= got and found(text)
                for text, got in zip(texts, present, strict=True)
                for found, need in plan
            )
        )
