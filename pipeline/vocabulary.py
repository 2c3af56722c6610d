"""Characters the training data needs that the base tokenizer lacks, added with embeddings.

MiniLM's (bert-base-uncased) vocabulary knows a few hundred CJK characters: most Chinese
text becomes `[UNK]`, and a Chinese prompt is then judged on its digits and Latin words.
Each missing CJK character of the train split becomes a token (BERT's pre-tokenizer already
splits CJK text into single characters), its embedding row is appended (transformers'
mean-and-covariance initialisation, seeded) and trained while every existing row stays
fixed, so the base model's English behaviour does not move.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


def is_cjk(char: str) -> bool:
    """A CJK ideograph (the characters BERT's tokenizer splits one by one)."""
    return len(char) == 1 and "CJK" in unicodedata.name(char, "") and char.isalpha()


def missing_characters(tokenizer: Any, texts: Iterable[str]) -> list[str]:
    """CJK characters of `texts` the tokenizer would turn into [UNK], sorted."""
    vocab = tokenizer.get_vocab()
    seen = {c for text in texts for c in text if is_cjk(c)}
    return sorted(c for c in seen if c not in vocab)


def extend(tokenizer: Any, model: Any, chars: list[str]) -> int:
    """Add `chars` as tokens and embedding rows; returns the old vocabulary size."""
    old = model.get_input_embeddings().weight.shape[0]
    if chars:
        tokenizer.add_tokens(chars)
        model.resize_token_embeddings(len(tokenizer))
    return old


@contextmanager
def new_rows_trainable(model: Any, old: int) -> Iterator[Any]:
    """Within the block the embedding matrix trains, its first `old` rows get no gradient."""
    weight = model.get_input_embeddings().weight

    def keep_old_rows(grad):
        grad = grad.clone()
        grad[:old] = 0
        return grad

    weight.requires_grad_(True)
    handle = weight.register_hook(keep_old_rows)
    try:
        yield weight
    finally:
        weight.requires_grad_(False)
        handle.remove()
