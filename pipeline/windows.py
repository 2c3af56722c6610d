"""Long texts as the classifier sees them: overlapping windows of at most `max_length` tokens.

The router scores every window of a prompt and treats the prompt as positive when any
window is, so training and evaluation score windows the same way: a long public text is
many public windows (length alone says nothing), and a secret after the first window is
still read. The windows are the tokenizer's own overflow (`return_overflowing_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence

OVERLAP = 32
"""Tokens each window shares with the previous one, so a phrase cut at a border is whole in one."""


def windows(tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[int]]:
    """Token ids of every window (with special tokens) and the index of the text it came from."""
    if not texts:
        return [], []
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        stride=min(OVERLAP, max_length // 4),
        return_overflowing_tokens=True,
    )
    return enc["input_ids"], list(enc["overflow_to_sample_mapping"])


def max_per_text(scores: Sequence[float], owners: Sequence[int], count: int) -> list[float]:
    """A text's score is its highest window's score (positive if any window is)."""
    best = [float("-inf")] * count
    for score, owner in zip(scores, owners, strict=True):
        best[owner] = max(best[owner], score)
    return best
