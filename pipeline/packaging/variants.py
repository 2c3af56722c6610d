"""FP32 vs INT8 vs Q/DQ: accuracy (from upstream metrics), size, and CPU latency.

Latency is measured here with ONNX Runtime, one thread, spinning off, variants
interleaved round-robin and reported as medians (see BENCHMARKING.md): absolute numbers
on a shared machine are noisy, the ratios between variants are what the report shows.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

VARIANTS = ("fp32", "int8", "qdq")
DESCRIPTIONS = {
    "fp32": "FP32 ONNX (export)",
    "int8": "INT8 for ONNX Runtime CPU",
    "qdq": "INT8 Q/DQ for TensorRT",
}


@dataclass
class Variant:
    name: str
    description: str
    file: str
    size_bytes: int
    metrics: dict
    latency_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def collect(models: dict[str, Path], upstream: dict[str, dict]) -> list[Variant]:
    """One Variant per model file that exists, with its eval metrics from upstream."""
    quantize = upstream.get("quantize", {})
    finetune = upstream.get("finetune", {})
    found = []
    for name in VARIANTS:
        path = models.get(name)
        if path is None or not path.is_file():
            continue
        metrics = quantize.get(name) or (finetune.get(name) if name == "fp32" else None) or {}
        found.append(
            Variant(
                name,
                DESCRIPTIONS[name],
                path.name,
                path.stat().st_size,
                {k: v for k, v in metrics.items() if isinstance(v, int | float)},
            )
        )
    return found


def measure_latency(
    models: dict[str, Path], *, sequence: int, rounds: int = 20, warmup: int = 3
) -> dict[str, float]:
    """Median ms per inference (batch 1, `sequence` tokens), variants interleaved."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in models.items()
    }
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(1, sequence), dtype=np.int64)
    base = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }
    feeds = {n: {i.name: base[i.name] for i in s.get_inputs()} for n, s in sessions.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for i in range(warmup + rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, feeds[name])
            if i >= warmup:
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(t), 3) for name, t in times.items()}
