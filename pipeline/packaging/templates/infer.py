#!/usr/bin/env python3
"""Classify one text with this bundle's model (edgepack).

Uses the TensorRT engine (model.plan, built on the device by build_engine.sh) when
TensorRT and the engine are present, else ONNX Runtime on the INT8 model.

    python3 infer.py "text to classify" [--runtime auto|tensorrt|onnxruntime]

Prints one JSON line: {"label": ..., "scores": {label: probability}, "runtime": ...}.
With EDGEPACK_PUBLIC_KEY set (a PEM public key), it first checks that the signed
manifest.json one folder up vouches for every file here, and refuses to run otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def tokenize(text: str, max_length: int) -> dict[str, np.ndarray]:
    """input_ids / attention_mask / token_type_ids (int64, batch of one)."""
    tokenizer_json = HERE / "tokenizer.json"
    if tokenizer_json.is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_json))
        tok.no_padding()
        tok.enable_truncation(max_length)
        enc = tok.encode(text)
        ids, mask, types = enc.ids, enc.attention_mask, enc.type_ids
    else:
        from transformers import AutoTokenizer

        enc = AutoTokenizer.from_pretrained(str(HERE))(text, truncation=True, max_length=max_length)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        types = enc.get("token_type_ids", [0] * len(ids))
    as_batch = lambda values: np.asarray([values], dtype=np.int64)  # noqa: E731
    return {
        "input_ids": as_batch(ids),
        "attention_mask": as_batch(mask),
        "token_type_ids": as_batch(types),
    }


def run_onnxruntime(model: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]


def run_tensorrt(plan: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from edgepack_engine.runtime import run_engine

    return next(iter(run_engine(plan, feeds).values()))


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def signature_refused() -> bool:
    """With a public key configured, True when this bundle is unsigned or tampered with."""
    if not os.environ.get("EDGEPACK_PUBLIC_KEY"):
        return False
    import edgepack_signature

    return edgepack_signature.main([]) != 0


def main(argv: list[str] | None = None) -> int:
    if signature_refused():
        return 5
    meta = json.loads((HERE / "metadata.json").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text")
    parser.add_argument("--runtime", choices=["auto", "tensorrt", "onnxruntime"], default="auto")
    args = parser.parse_args(argv)
    plan = HERE / meta["files"]["plan"]
    runtime = args.runtime
    if runtime == "auto":
        runtime = "tensorrt" if plan.is_file() and tensorrt_available() else "onnxruntime"
    if runtime == "tensorrt" and not plan.is_file():
        parser.error(f"{plan} not found: run ./build_engine.sh first")
    feeds = tokenize(args.text, meta["max_length"])
    if runtime == "tensorrt":
        logits = run_tensorrt(plan, feeds)
    else:
        logits = run_onnxruntime(HERE / meta["files"]["onnx_int8"], feeds)
    row = np.asarray(logits, dtype=np.float64)[0]
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    labels = meta["labels"]
    scores = {label: round(float(p), 6) for label, p in zip(labels, probs, strict=True)}
    print(json.dumps({"label": labels[int(row.argmax())], "scores": scores, "runtime": runtime}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
