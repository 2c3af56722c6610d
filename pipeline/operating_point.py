"""The classifier's operating point: the P(positive) threshold, chosen for recall first.

A confidential prompt sent to the cloud costs far more than a public one kept on-prem, so
the threshold is the highest one whose recall on the eval split reaches `eval.min_recall`,
never above 0.5 (argmax), and placed halfway to the next lower score so that INT8 rounding
does not move a caught prompt below it. The finetune stage writes it into the model's
`config.json` (which the export carries into onnx/); quantize and router read it there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from pipeline.scoring import classification_metrics

KEY = "edgepack_operating_point"
CEILING = 0.5
FLOOR = 1e-4
"""The router requires 0 < threshold < 1."""


def choose(scores: Sequence[float], positive: Sequence[bool], min_recall: float) -> float:
    """The highest threshold (<= 0.5) that keeps recall >= `min_recall` on these scores."""
    caught = sorted((s for s, p in zip(scores, positive, strict=True) if p), reverse=True)
    if not caught:
        return CEILING
    lowest = caught[needed(min_recall, len(caught)) - 1]
    below = [s for s in scores if s < lowest]
    threshold = (lowest + max(below)) / 2 if below else lowest
    return min(CEILING, max(FLOOR, threshold))


def needed(min_recall: float, positives: int) -> int:
    """How many of `positives` must be caught: the fewest whose share, as a float, is at
    least `min_recall`. The product is rounded first (0.95 × 20 is 18.999… in floats), then
    checked by the same division a reader of the recall makes (0.5000000000000001 of 2 is 2)."""
    need = max(1, math.ceil(min_recall * positives - 1e-9))
    return need + 1 if need < positives and need / positives < min_recall else need


def metrics_at(scores: Sequence[float], y_true: Sequence[int], positive: int, threshold: float):
    """`pipeline.scoring` metrics of deciding `positive` when score >= threshold."""
    other = 1 - positive if positive in (0, 1) else 0
    predicted = [positive if s >= threshold else other for s in scores]
    return classification_metrics(y_true, predicted, positive)


def write(config_dir: Path, threshold: float, min_recall: float) -> None:
    """Record the operating point in `config_dir/config.json` (a Hugging Face config)."""
    path = config_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config[KEY] = {"threshold": threshold, "min_recall": min_recall}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read(config_dir: Path) -> float | None:
    """The threshold recorded beside a model, or None (a model built without one)."""
    path = config_dir / "config.json"
    if not path.is_file():
        return None
    point = json.loads(path.read_text(encoding="utf-8")).get(KEY)
    return float(point["threshold"]) if isinstance(point, dict) else None


def report(
    scores: Sequence[float],
    examples: Sequence,
    labels: Sequence[str],
    positive_label: str,
    threshold: float,
) -> dict:
    """Metrics at `threshold` per eval subset and per language (the rows' `subset`/`lang`),
    with the false-alarm rate (public rows flagged) that a hard-negative subset is about,
    and, where both labels occur, ROC AUC: how well the scores rank, whatever threshold the
    few lowest-scoring confidential rows set (a data change is judged on it first)."""
    positive = list(labels).index(positive_label)
    y_true = [list(labels).index(e.label) for e in examples]
    groups: dict[str, dict[str, list[int]]] = {}
    for i, e in enumerate(examples):
        by_lang = groups.setdefault(e.subset or "eval", {})
        for key in ("all", e.lang) if e.lang else ("all",):
            by_lang.setdefault(key, []).append(i)
    out: dict[str, dict] = {}
    for subset, by_lang in groups.items():
        out[subset] = {}
        for key, rows in by_lang.items():
            truth = [y_true[i] for i in rows]
            figures = metrics_at([scores[i] for i in rows], truth, positive, threshold)
            negatives = [i for i in rows if y_true[i] != positive]
            flagged = sum(scores[i] >= threshold for i in negatives)
            figures["positives"] = len(rows) - len(negatives)
            figures["false_alarm_rate"] = flagged / len(negatives) if negatives else 0.0
            if 0 < len(negatives) < len(rows):
                figures["auc"] = _auc([scores[i] for i in rows], truth, positive)
            out[subset][key] = figures
    return out


def _auc(scores: Sequence[float], y_true: Sequence[int], positive: int) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([t == positive for t in y_true], scores))
