"""Every part of every text, in windows the model can read, at a bounded cost.

The model reads `max_length` tokens (128, special tokens included). A long prompt (chat
history, RAG context) is read as overlapping windows: `width` tokens each, a new one every
`stride = width // 2`, so any passage of up to `stride` tokens lies whole inside some
window. Texts (messages) are packed in order into units of at most `width` tokens: a text
longer than that is a unit of its own, read window by window, so a short message after a
long one is never read only in the long one's company; short neighbours share a unit. Where
two units meet, one more window holds what comes before and after the boundary (a sentence
that spans two messages). The request is confidential if any window is.

Cost: about `tokens / stride` windows plus one per unit, scored in the micro-batcher's
runs. `budget` caps the tokens read per request (`scan_budget`: from the body limit); a
request with more is not read past it, and the classifier routes it on-prem. Tokenizing is
done in chunks of at most `CHUNK_CHARS` characters (cut at whitespace, so no word is
split), and stops once the budget is passed: the tokenizer never sees more than one chunk
at once, nor much more text than the budget. (A character can be more than one token:
the tokenizer's NFD splits a Hangul syllable into two or three jamo.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

CHUNK_CHARS = 16 * 1024
BODY_BYTES_PER_TOKEN = 128  # scan budget: one token per this many bytes of the body limit

Window = tuple[int, ...]


def scan_budget(max_body_bytes: int) -> int:
    """Tokens scanned per request at most: the body limit (6 MiB by default) / 128 = 49,152,
    more than a 32k-token prompt, and a CPU cost per request that benchmarks/router/
    long_prompts.py measures."""
    return max(1, max_body_bytes // BODY_BYTES_PER_TOKEN)


class Windows:
    """Builds the windows of a request's texts with `tokenizer` (a `tokenizers.Tokenizer`
    of its own: its truncation and padding are turned off here; then it is only read, so
    threads may share it)."""

    def __init__(self, tokenizer, max_length: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        marked = tokenizer.encode("a").ids
        bare = tokenizer.encode("a", add_special_tokens=False).ids
        start = next(i for i in range(len(marked)) if marked[i : i + len(bare)] == bare)
        self.prefix = tuple(marked[:start])  # [CLS] for BERT
        self.suffix = tuple(marked[start + len(bare) :])  # [SEP]
        self.width = max_length - len(self.prefix) - len(self.suffix)
        self.stride = max(1, self.width // 2)

    def __call__(self, texts: Sequence[str], budget: int) -> list[Window] | None:
        """The distinct windows over `texts`, special tokens added; None past `budget`."""
        tokens = self.tokens(texts, budget)
        return None if tokens is None else self.cut(tokens)

    def cut(self, tokens: list[list[int]]) -> list[Window]:
        """The distinct windows over texts' token ids, special tokens added."""
        units = pack(tokens, self.width)
        found: dict[Window, None] = {}
        for unit in units:
            for window in slide(unit, self.width, self.stride):
                found[self.prefix + tuple(window) + self.suffix] = None
        for seam in seams(units, self.width, self.stride):
            found[self.prefix + tuple(seam) + self.suffix] = None
        return list(found)

    def tokens(self, texts: Sequence[str], budget: int) -> list[list[int]] | None:
        """Each text's token ids (no special tokens), or None once more than `budget`."""
        out: list[list[int]] = [[] for _ in texts]
        count = 0
        for index, chunk in _chunks(texts, CHUNK_CHARS):
            ids = self._encode(chunk)
            out[index].extend(ids)
            count += len(ids)
            if count > budget:
                return None
        return out

    def encode(self, text: str, limit: int) -> list[int]:
        """One text's token ids (no special tokens), a chunk at a time; once there are more
        than `limit`, the rest is not tokenized."""
        ids: list[int] = []
        for _, chunk in _chunks([text], CHUNK_CHARS):
            ids.extend(self._encode(chunk))
            if len(ids) > limit:
                break
        return ids

    def _encode(self, chunk: str) -> list[int]:
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        return encode([chunk], add_special_tokens=False)[0].ids  # fast: no offsets


def pack(tokens: list[list[int]], width: int) -> list[list[int]]:
    """Texts' tokens in order, in units of ≤ width tokens; a longer text is a unit alone."""
    units: list[list[int]] = []
    current: list[int] = []
    for ids in tokens:
        if not ids:
            continue
        if len(ids) > width or len(current) + len(ids) > width:
            if current:
                units.append(current)
            current = []
        if len(ids) > width:
            units.append(ids)
        else:
            current = current + ids
    if current:
        units.append(current)
    return units


def slide(unit: list[int], width: int, stride: int) -> Iterator[list[int]]:
    """Windows of `width` every `stride` tokens, the last one ending at the unit's end."""
    if len(unit) <= width:
        yield unit
        return
    last = len(unit) - width
    for start in range(0, last, stride):
        yield unit[start : start + width]
    yield unit[last:]


def seams(units: list[list[int]], width: int, stride: int) -> Iterator[list[int]]:
    """Per boundary between units, the `stride` tokens before it and `width - stride` after
    it in the units' concatenation: a passage of ≤ stride tokens that crosses boundaries
    lies whole in the window of the first one it crosses (a short unit may sit between)."""
    stream = [token for unit in units for token in unit]
    boundary = 0
    for unit in units[:-1]:
        boundary += len(unit)
        yield stream[max(0, boundary - stride) : boundary + width - stride]


def _chunks(texts: Sequence[str], size: int) -> Iterator[tuple[int, str]]:
    """(text index, piece) with pieces of ≤ size characters, cut after whitespace when
    there is some in the piece's second half (CJK text has none and is cut anywhere: its
    characters are tokens of their own)."""
    for index, text in enumerate(texts):
        start = 0
        while len(text) - start > size:
            end = start + size
            cut = max(text.rfind(" ", start + size // 2, end), text.rfind("\n", start, end))
            end = cut + 1 if cut > start + size // 2 else end
            yield index, text[start:end]
            start = end
        if start < len(text):
            yield index, text[start:]
