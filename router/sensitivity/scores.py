"""The model's scores by what it read: a resent message is not scored again.

Chat clients resend the whole conversation on every turn, so without this the model's
cost per request grows with the conversation while only its last messages are new.

The key is a digest of exactly what the model scores: a window's token ids, special
tokens included (or a text, for a model that cuts no windows). A message's windows are
the same ids whenever it is resent: windows.py packs messages in order, so appending
messages moves none of the windows before the last unit. A window across a boundary
holds tokens of the messages on both sides, so its key is made of both. Equal keys are
equal inputs, and the model scores an input the same alone as in any batch (the build's
batch-invariance gate, docs/decisions/005-batch-invariant-cpu-int8.md), so a hit is the
score a fresh run would give: the cache changes what a decision costs, never the
decision. Only scores are kept, never a decision, a header or a text; the digests are
keyed with a random salt of the cache's own, so none can be matched against a digest
computed elsewhere.

It holds the scores of one model: the classifier owns it, and a reload that changes the
model, its files or any classifier setting (the threshold included) builds a new
classifier, with an empty cache.

Each router process (`listen.workers`) has its own. A shared one (Redis, shared memory)
would cost a round trip or a lock per window where a lookup here is a dict access, and
would carry scores between processes that load their model and reload their config each
on their own. Apart, a conversation whose turns reach N workers is read by the model at
most N times, a bound that does not grow with its turns (and a client that keeps its
connection open stays with one worker).
Only the event loop's thread reads and writes it (`key` is also called off it: it reads
nothing that changes), so it takes no lock. Measurements: docs/decisions/009-score-cache.md.
"""

from __future__ import annotations

import os
from array import array
from collections import OrderedDict
from hashlib import blake2b

from router.sensitivity.windows import Window

DIGEST_BYTES = 16  # 128 bits: no two inputs meet by chance; a second preimage is out of reach


class ScoreCache:
    """A bounded LRU (an OrderedDict, as functools.lru_cache keeps one) of scores by
    `key(item)`; `entries` 0 keeps none."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._scores: OrderedDict[bytes, float] = OrderedDict()
        self._salt = os.urandom(16)

    def __len__(self) -> int:
        return len(self._scores)

    def key(self, item: str | Window) -> bytes:
        """The digest of what the model reads; texts and windows never share a key."""
        if isinstance(item, str):
            data, kind = item.encode(), b"text"
        else:
            data, kind = array("I", item).tobytes(), b"window"
        return blake2b(data, digest_size=DIGEST_BYTES, key=self._salt, person=kind).digest()

    def get(self, key: bytes) -> float | None:
        score = self._scores.get(key)
        if score is not None:
            self._scores.move_to_end(key)
        return score

    def put(self, key: bytes, score: float) -> None:
        if not self.entries:
            return
        self._scores[key] = score
        self._scores.move_to_end(key)
        if len(self._scores) > self.entries:
            self._scores.popitem(last=False)
