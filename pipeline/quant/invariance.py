"""Does a model give a prompt the same score alone as inside a batch of other prompts?

Scores each text alone (batch 1, no padding), then in shuffled batches padded to the
batch's longest row and to `max_length`: what the router's micro-batching and Triton's
dynamic batching do to a request. The verdict (`gate.Invariance`) is the gate's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.quant.gate import Invariance, compare_scores
from pipeline.quant.onnx_eval import encode, ort_session

BATCH = 8
RUNS = (("longest", 1), ("max_length", 2))
"""(padding, shuffle seed) of each batched run."""


def _positive(logits, positive: int) -> list[float]:
    import numpy as np

    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp[:, positive] / exp.sum(axis=1)).tolist()


def _feeds(tokenizer, texts: Sequence[str], max_length: int, names, padding: str) -> dict:
    import numpy as np

    feeds = encode(tokenizer, texts, max_length, names)
    if padding == "max_length":
        width = max_length - feeds["input_ids"].shape[1]
        pad_values = {"input_ids": tokenizer.pad_token_id or 0}
        feeds = {
            k: np.pad(v, ((0, 0), (0, width)), constant_values=pad_values.get(k, 0))
            for k, v in feeds.items()
        }
    return feeds


def measure(
    model: Path,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    positive: int,
    threshold: float,
) -> Invariance:
    """Alone vs batched P(positive) of `texts` under `model` (CPU, ONNX Runtime)."""
    import numpy as np

    session = ort_session(model)
    names = [i.name for i in session.get_inputs()]

    def score(batch: Sequence[str], padding: str) -> list[float]:
        feeds = _feeds(tokenizer, batch, max_length, names, padding)
        return _positive(session.run(None, feeds)[0], positive)

    alone = [score([t], "longest")[0] for t in texts]
    runs = []
    for padding, seed in RUNS:
        order = np.random.default_rng(seed).permutation(len(texts)).tolist()
        batched = [0.0] * len(texts)
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            for i, p in zip(rows, score([texts[i] for i in rows], padding), strict=True):
                batched[i] = p
        runs.append(batched)
    return compare_scores(alone, runs, threshold)
