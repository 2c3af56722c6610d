"""Scoring an INT8 classifier against FP32 the way the quantize stage's gate does: every eval
text by its highest window, positive when P(positive) >= the export's operating point.
Shared by `quantize.py --modelopt` and `qdq_variants.py`, so their tables agree with the
build's `metrics.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import operating_point
from pipeline.quant import onnx_eval


def scorer(recipe, onnx_dir: Path, examples) -> tuple[float, Callable[[Path], tuple]]:
    """(threshold, score): `score(model)` gives (P(positive) per text, metrics at threshold)."""
    tokenizer = onnx_eval.load_tokenizer(onnx_dir)
    threshold = operating_point.read(onnx_dir) or operating_point.CEILING
    positive = recipe.labels.index(recipe.positive_label)
    truth = [recipe.labels.index(e.label) for e in examples]
    texts = [e.text for e in examples]

    def score(model: Path) -> tuple[np.ndarray, dict]:
        session = onnx_eval.ort_session(model)
        found = onnx_eval.window_scores(
            session, tokenizer, texts, recipe.training.max_length, positive
        )
        return np.array(found), operating_point.metrics_at(found, truth, positive, threshold)

    return threshold, score


def agreement(scores: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """Percent of texts decided as the reference (FP32) decides them."""
    return 100.0 * float(np.mean((scores >= threshold) == (reference >= threshold)))


def mean_shift(scores: np.ndarray, reference: np.ndarray) -> float:
    """Mean |P(positive) - FP32's|: finer than agreement, which counts only flipped texts."""
    return float(np.abs(scores - reference).mean())
