"""Calibration: ONNX Runtime's own calibrators fed from the recipe's calib split.

We never hand-write a calibrator. We drive `onnxruntime.quantization.create_calibrator`
in chunks (its histogram calibrators keep every intermediate output of a chunk in memory,
so 256 samples at once would cost gigabytes) and save the ranges with ORT's calibration
cache format. `quantize_static(calibration_cache_path=...)` then reuses the ranges for
every retry of the accuracy gate, so each graph is calibrated once per stage run (the
Q/DQ model's, and the BERT-fused one the CPU model is built from: `load_ranges`).

`per-tensor` picks, for each tensor, whichever of max / entropy / percentile quantizes its
calibration histogram with the least error (`calibrate_per_tensor`).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.quant.onnx_eval import encode

if TYPE_CHECKING:
    from onnxruntime.quantization import CalibrationMethod

METHODS = {
    "minmax": "MinMax",
    "entropy": "Entropy",
    "percentile": "Percentile",
    "per-tensor": "MinMax",  # ranges chosen per tensor, stored as a MinMax cache
}


def calibrate_method(name: str) -> CalibrationMethod:
    """The ORT enum for a recipe's `quantize.calibration` value."""
    from onnxruntime.quantization import CalibrationMethod

    return getattr(CalibrationMethod, METHODS[name])


def pick_samples(texts: Sequence[str], samples: int) -> list[str]:
    """`samples` texts spread evenly over the split (all of them if it is smaller)."""
    if samples >= len(texts):
        return list(texts)
    step = len(texts) / samples
    return [texts[int(i * step)] for i in range(samples)]


def make_reader(feeds: Sequence[dict]):
    """A `CalibrationDataReader` over prepared feeds, one unpadded example per call.

    Batch 1 without padding calibrates on the activations real requests produce; padded
    positions would pull ranges toward what padding tokens happen to compute.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class SplitReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self._feeds, None)

        def __len__(self) -> int:
            return len(feeds)

    return SplitReader()


def same_length_chunks(
    tokenizer, texts: Sequence[str], max_length: int, input_names: Sequence[str], chunk: int
) -> list[list[dict]]:
    """Feeds grouped by token count: ORT's histogram collector stacks a chunk's outputs,
    so every example in one chunk must have the same shape.
    """
    by_length: dict[int, list[dict]] = {}
    for text in texts:
        feeds = encode(tokenizer, [text], max_length, input_names)
        by_length.setdefault(feeds["input_ids"].shape[1], []).append(feeds)
    return [
        group[i : i + chunk]
        for _, group in sorted(by_length.items())
        for i in range(0, len(group), chunk)
    ]


def calibrate(
    model: Path,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    method: str,
    percentile: float,
    op_types: Sequence[str],
    cache_path: Path,
    chunk: int = 32,
    symmetric: bool = True,
    inputs_of: Collection[str] | None = None,
) -> Path:
    """Run ORT's calibrator over `texts` (chunked) and write ORT's calibration cache.

    `symmetric=False` keeps each tensor's own low and high ends, for asymmetric uint8
    activations (a GELU output is almost all positive: a symmetric range wastes half);
    `per-tensor` ranges are symmetric either way. `inputs_of` (node names): calibrate only
    those nodes' activation inputs, all a quantizer that keeps outputs float reads; ORT
    would otherwise also histogram every input and output of every `op_types` node."""
    if method == "per-tensor":
        calibrate_per_tensor(
            model, tokenizer, texts, max_length, percentile, op_types, cache_path, chunk,
            inputs_of,
        )  # fmt: skip
        return cache_path
    from onnxruntime.quantization.calibrate import save_tensors_data

    options = {"symmetric": symmetric}
    if method == "percentile":
        options["percentile"] = percentile
    with tempfile.TemporaryDirectory(prefix="edgepack-calib-") as tmp:
        calibrator, input_names = _calibrator(
            model, op_types, calibrate_method(method), options, Path(tmp), inputs_of
        )
        for feeds in same_length_chunks(tokenizer, texts, max_length, input_names, chunk):
            with contextlib.redirect_stdout(io.StringIO()):  # ORT prints per chunk
                calibrator.collect_data(make_reader(feeds))
        with contextlib.redirect_stdout(io.StringIO()):
            ranges = calibrator.compute_data()
        del calibrator
    save_tensors_data(ranges, cache_path)
    return cache_path


def _calibrator(model: Path, op_types, method, options: dict, tmp: Path, inputs_of):
    """ORT's calibrator for `model` (augmented copy in `tmp`) and the model's input names;
    with `inputs_of`, its histograms narrowed to those nodes' activation inputs (MinMax
    reduces in the graph itself, where the extra tensors cost next to nothing)."""
    from onnxruntime.quantization.calibrate import HistogramCalibrater, create_calibrator

    calibrator = create_calibrator(
        model, list(op_types), augmented_model_path=str(tmp / "augmented.onnx"),
        calibrate_method=method, extra_options=options,
    )  # fmt: skip
    graph = calibrator.model.graph  # augmented: same inputs and node names, outputs added
    if inputs_of is not None and isinstance(calibrator, HistogramCalibrater):
        wanted = set(inputs_of)
        inputs = {i for node in graph.node if node.name in wanted for i in node.input}
        calibrator.tensors_to_calibrate &= inputs
    return calibrator, [i.name for i in graph.input]


def load_ranges(cache_path: Path) -> dict[str, tuple[float, float]]:
    """(low, high) per tensor from a calibration cache `calibrate` wrote."""
    import numpy as np
    from onnxruntime.quantization.calibrate import load_tensors_data

    return {
        name: (float(np.min(data.range_value[0])), float(np.max(data.range_value[1])))
        for name, data in load_tensors_data(cache_path).data.items()
    }


def clip_round_error(hist, edges, threshold: float) -> float:
    """Mean squared error of symmetric INT8 with range ±threshold over a value histogram:
    clipping error beyond the range, uniform rounding error (step²/12) inside it.
    """
    import numpy as np

    centers = np.abs((edges[:-1] + edges[1:]) / 2)
    step = threshold / 127.0
    err = np.where(centers > threshold, (centers - threshold) ** 2, step * step / 12.0)
    return float((hist * err).sum() / max(hist.sum(), 1))


def percentile_threshold(hist, edges, percentile: float) -> float:
    """The |value| below which `percentile` % of a (signed) histogram's mass lies."""
    import numpy as np

    centers = np.abs((edges[:-1] + edges[1:]) / 2)
    order = np.argsort(centers)
    cdf = np.cumsum(hist[order]) / max(hist.sum(), 1)
    return float(centers[order][min(np.searchsorted(cdf, percentile / 100.0), len(cdf) - 1)])


def calibrate_per_tensor(
    model: Path,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    percentile: float,
    op_types: Sequence[str],
    cache_path: Path,
    chunk: int = 32,
    inputs_of: Collection[str] | None = None,
) -> dict[str, str]:
    """Calibrate every tensor with the method that quantizes it best.

    One pass of ORT's entropy calibrator collects each tensor's histogram; for each tensor
    the max, entropy (ORT's KL threshold) and percentile ranges are scored by their INT8
    error on that histogram and the lowest wins: tensors with rare outliers get a clipped
    range, tensors whose tails carry signal keep their max. Writes the ranges to
    `cache_path` as a MinMax cache (quantize with CalibrationMethod.MinMax); returns the
    method picked per tensor.
    """
    import numpy as np
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="edgepack-calib-") as tmp:
        calibrator, input_names = _calibrator(
            model, op_types, CalibrationMethod.Entropy, {"symmetric": True}, Path(tmp),
            inputs_of,
        )  # fmt: skip
        for feeds in same_length_chunks(tokenizer, texts, max_length, input_names, chunk):
            with contextlib.redirect_stdout(io.StringIO()):
                calibrator.collect_data(make_reader(feeds))
        collector = calibrator.collector
        ranges, picked = {}, {}
        for name, histogram in collector.histogram_dict.items():
            hist, edges = histogram[0], histogram[1]
            entropy = collector.get_entropy_threshold(histogram, collector.num_quantized_bins)
            candidates = {
                "minmax": float(max(abs(histogram[2]), abs(histogram[3]))),
                "entropy": float(max(abs(entropy[0]), abs(entropy[1]))),
                "percentile": percentile_threshold(hist, edges, percentile),
            }
            best = min(candidates, key=lambda m: clip_round_error(hist, edges, candidates[m]))
            t = np.float32(max(candidates[best], 1e-8))
            ranges[name], picked[name] = (-t, t), best
        del calibrator
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), cache_path)
    return picked
