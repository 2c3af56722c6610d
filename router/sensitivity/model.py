"""The build's sensitivity classifier (ONNX, usually model.int8.onnx) in ONNX Runtime.

Tokenization uses the `tokenizers` library directly (tokenizer.json beside the model): it
pads a batch to its longest member, not to a fixed length, and truncates at `max_length`.
The positive label's index comes from config.json's id2label beside the model.
onnxruntime and tokenizers are imported here only, so the CLI starts without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from router.config import ModelConfig


class OnnxSensitivityModel:
    def __init__(self, session, tokenizer, positive_index: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.positive_index = positive_index
        self.input_names = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, config: ModelConfig) -> OnnxSensitivityModel:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(config.path)
        if not path.is_file():
            raise FileNotFoundError(f"classifier model not found: {path}")
        tok_path = Path(config.tokenizer or path.parent / "tokenizer.json")
        tokenizer = Tokenizer.from_file(str(tok_path))
        tokenizer.enable_truncation(config.max_length)
        pad_id = tokenizer.token_to_id("[PAD]") or 0
        tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id) or "[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, tokenizer, positive_index(path.parent, config.positive_label))

    def scores(self, texts: list[str]) -> list[float]:
        """P(positive) per text; one ORT run for the whole batch."""
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        logits = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return probs[:, self.positive_index].astype(float).tolist()


def positive_index(folder: Path, label: str) -> int:
    """Index of `label` in config.json's id2label (the build writes it from recipe.labels)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing (needed for the label order)")
    id2label = json.loads(config_path.read_text()).get("id2label") or {}
    for key, name in id2label.items():
        if name == label:
            return int(key)
    raise ValueError(f"{config_path}: id2label has no label {label!r}")
