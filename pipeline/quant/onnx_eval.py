"""Tokenize a split and score an ONNX classifier with ONNX Runtime.

Shared by the quantize gate, the package report and the router's classifier checks, so
every INT8-vs-FP32 figure in a build comes from the same tokenization, the same windows
over long texts and the same `pipeline.scoring` metrics at the same threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.operating_point import metrics_at, report
from pipeline.windows import max_per_text, windows

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

    from pipeline.data import Example


def ort_session(
    model: Path | str, threads: int | None = None, spinning: bool = True
) -> ort.InferenceSession:
    """A CPU InferenceSession; `spinning=False` for interleaved timing (see BENCHMARKING.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def load_tokenizer(onnx_dir: Path | str):
    """The tokenizer saved beside the exported model (never from a hub)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(onnx_dir), local_files_only=True)


def encode(
    tokenizer, texts: Sequence[str], max_length: int, input_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """int64 feeds for exactly the inputs the model declares, padded to the longest text."""
    import numpy as np

    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    feeds = {}
    for name in input_names:
        if name in batch:
            feeds[name] = batch[name].astype(np.int64)
        elif name == "token_type_ids":
            feeds[name] = np.zeros_like(batch["input_ids"], dtype=np.int64)
        else:
            raise ValueError(f"model input {name!r} is not produced by the tokenizer")
    return feeds


def predict_logits(
    session: ort.InferenceSession,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 32,
) -> np.ndarray:
    """Logits in input order; texts are batched by length so padding stays small."""
    import numpy as np

    names = [i.name for i in session.get_inputs()]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        feeds = encode(tokenizer, [texts[i] for i in idx], max_length, names)
        logits = session.run(None, feeds)[0]
        for row, i in zip(logits, idx, strict=True):
            out[i] = row
    return np.stack(out)


def window_scores(
    session: ort.InferenceSession,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    positive: int,
    batch_size: int = 32,
) -> list[float]:
    """P(positive) of each text: its highest-scoring window (`pipeline.windows`)."""
    import numpy as np

    ids, owners = windows(tokenizer, texts, max_length)
    names = [i.name for i in session.get_inputs()]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    scores = [0.0] * len(ids)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(ids[i]) for i in rows)
        batch = {
            "input_ids": np.full((len(rows), width), tokenizer.pad_token_id or 0, np.int64),
            "attention_mask": np.zeros((len(rows), width), np.int64),
        }
        for r, i in enumerate(rows):
            batch["input_ids"][r, : len(ids[i])] = ids[i]
            batch["attention_mask"][r, : len(ids[i])] = 1
        batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
        logits = session.run(None, {name: batch[name] for name in names})[0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        for i, p in zip(rows, (exp[:, positive] / exp.sum(axis=1)).tolist(), strict=True):
            scores[i] = p
    return max_per_text(scores, owners, len(texts))


def evaluate(
    model: Path | str,
    tokenizer,
    examples: Sequence[Example],
    labels: Sequence[str],
    positive_label: str,
    max_length: int,
    threads: int | None = None,
    threshold: float = 0.5,
) -> dict:
    """`pipeline.scoring` metrics (0-1 scale) of an ONNX classifier on `examples`, every
    text scored by its windows and positive when P(positive) >= `threshold`; `subsets`
    holds them per eval subset and language (`operating_point.report`)."""
    session = ort_session(model, threads=threads)
    positive = list(labels).index(positive_label)
    scores = window_scores(session, tokenizer, [e.text for e in examples], max_length, positive)
    y_true = [list(labels).index(e.label) for e in examples]
    subsets = report(scores, examples, labels, positive_label, threshold)
    return metrics_at(scores, y_true, positive, threshold) | {"subsets": subsets}
