"""Classification metrics shared by fine-tuning, the INT8 gate and the report."""

from __future__ import annotations

from collections.abc import Sequence


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], positive: int) -> dict:
    """Accuracy plus precision/recall/F1 of the `positive` class, all on a 0-1 scale."""
    if len(y_true) != len(y_pred) or not y_true:
        raise ValueError("y_true and y_pred must be non-empty and of equal length")
    pairs = list(zip(y_true, y_pred, strict=True))
    tp = sum(1 for t, p in pairs if t == positive and p == positive)
    fp = sum(1 for t, p in pairs if t != positive and p == positive)
    fn = sum(1 for t, p in pairs if t == positive and p != positive)
    correct = sum(1 for t, p in pairs if t == p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": correct / len(pairs),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n": len(pairs),
    }
