"""One RE2 pass per text decides which detectors need their full (Python `re`) check.

Every detector part declares `requires`: RE2 patterns that every text it fires on contains
(see hints.py for why they are supersets). One `RE2::Set` holds all of them and reports in a
single linear-time pass which are present; a part runs its unchanged `found()` only when all
of its patterns are. Parts without `requires` (and recognizers of other shapes) always run.

Why google-re2: one Set pass is linear in the text and an order of magnitude cheaper than
the same hints as one Python `re` alternation; what is left after it is mostly the
validators on real identifiers (measurements: docs/decisions/004-router-measured-choices.md).
Long input: see `present`.

Fail closed: the Python binding drops RE2's error flag (a DFA out of memory returns an
empty match list), so the Set also holds an always-matching canary; a result without it
means "unknown", and every part runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import re2

from router.sensitivity.detector import AnyOf
from router.sensitivity.registry import Recognizer

# Matches every text, so a successful pass always reports it; once, at the end: "(?:)"
# matched at every byte, which made every DFA state a match state whose ids RE2 records
# byte by byte (Match: 12.5k -> 8.6k instructions per eval text, under callgrind)
CANARY = r"\z"
LONG = 16 << 10  # UTF-8 bytes from which a text gets the word-hints-only Set (see below)
COUNTED = re.compile(r"(?<!\\x)\{\d+(?:,\d*)?\}")  # a counted repeat, not a \x{…} escape

Part = tuple[int, Callable[[str], bool], int]  # label's index, found(), required hints (bits)


class Prefilter:
    def __init__(self, recognizers: Sequence[Recognizer], max_mem: int = 64 << 20) -> None:
        self.recognizers = list(recognizers)
        self.labels = [rec.label for rec in self.recognizers]
        index: dict[str, int] = {CANARY: 0}
        self.parts: list[Part] = []
        for i, rec in enumerate(self.recognizers):
            for part in rec.parts if isinstance(rec, AnyOf) else (rec,):
                bits = 0
                for pattern in getattr(part, "requires", ()):
                    bits |= 1 << index.setdefault(pattern, len(index))
                self.parts.append((i, part.found, bits))
        self.set_patterns = list(index)
        self.set = _compile(self.set_patterns, max_mem)
        # long texts: shape hints (counted repeats) always count as present; see `present`
        self.long_patterns = [CANARY if COUNTED.search(p) else p for p in index]
        self.long_set = _compile(self.long_patterns, max_mem)
        self.everything = (1 << len(index)) - 1
        self.full_scans = 0  # passes whose result was unknown (all parts ran)
        self._plans: dict[int, tuple[tuple[int, Callable[[str], bool]], ...]] = {}

    def present(self, text: str, long: bool = False) -> int:
        """Bit i set when `text` contains hint pattern i (all bits when RE2 failed).

        All hints share one DFA, whose states are combinations of every hint's progress.
        On prose that stays small, but random-looking input (base64, digit soup) makes it
        build new states at every byte: 1 MB of base64 took 320 ms, of random digits,
        spaces and brackets 0.9 s, and a fresh 16 KB of them still 30-60 ms. Long input
        (`long`, or a text from `LONG` bytes) therefore gets a Set where the shape hints
        (counted repeats: card, IBAN, ID, phone, token shapes) count as always present:
        those checks run as they did before the prefilter, the word hints still skip the
        rest, and the pass stays near 30-60 ms per MB whatever the input."""
        data = text.encode("utf-8", "surrogatepass")
        found = (self.long_set if long or len(data) >= LONG else self.set).Match(data)
        if not found or 0 not in found:
            self.full_scans += 1
            return self.everything
        if len(found) == 1:  # the canary alone: most plain prompts
            return 1
        bits = 0
        for i in found:
            bits |= 1 << i
        return bits

    def plan(self, got: int) -> tuple[tuple[int, Callable[[str], bool]], ...]:
        """The parts whose hints are all in `got`; memoised, as texts share few hint sets."""
        plan = self._plans.get(got)
        if plan is None:
            if len(self._plans) >= 4096:  # bounded: 2**hints sets are possible in theory
                self._plans.clear()
            plan = tuple((i, found) for i, found, need in self.parts if need & got == need)
            self._plans[got] = plan
        return plan

    def scan(self, texts: Sequence[str]) -> tuple[str, ...]:
        """Labels that fire on any text, in recognizer order (same as checking every one)."""
        fired: set[int] = set()
        long = len(texts) > 1 and sum(map(len, texts)) >= LONG  # many texts, one budget
        for text in texts:
            for i, found in self.plan(self.present(text, long)):
                if i not in fired and found(text):
                    fired.add(i)
        if not fired:
            return ()
        return tuple(self.labels[i] for i in sorted(fired))


def _compile(patterns: Sequence[str], max_mem: int) -> re2.Set:
    options = re2.Options()
    options.max_mem = max_mem
    options.log_errors = False
    compiled = re2.Set.SearchSet(options)
    for pattern in patterns:  # index i is the i-th added (dicts keep insertion order)
        compiled.Add(pattern)
    compiled.Compile()
    return compiled
