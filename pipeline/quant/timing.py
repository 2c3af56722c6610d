"""Interleaved CPU latency measurement (see ../shared/BENCHMARKING.md).

Variants run round-robin in one process (A B C A B C ...), each warmed up, with ONNX
Runtime's spinning off and fixed threads, so a noisy shared machine slows every variant
alike and the ratios stay meaningful. Used by the stage (to pick the CPU INT8 model)
and by benchmarks/quantize.py.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping


def default_threads() -> int:
    """Cores this process may use; the thread count every timed InferenceSession is fixed to."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def loadavg() -> str:
    """The 1/5/15-minute load average, to print beside any timing."""
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:  # pragma: no cover - non-Linux
        return "n/a"


def interleaved_medians(
    runners: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup: int = 2,
    budget_s: float | None = None,
) -> dict[str, float]:
    """Median seconds per call of each runner, measured round-robin.

    `budget_s` bounds the wall time: rounds stop early once it is spent (at least 3).
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    started = time.perf_counter()
    for done in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - t0)
        if budget_s is not None and done >= 2 and time.perf_counter() - started > budget_s:
            break
    return {name: statistics.median(values) for name, values in samples.items()}


def synthetic_feeds(input_names: list[str], batch: int, seq: int, vocab: int = 1000) -> dict:
    """Fixed-seed token ids of an exact shape (timing needs shape, not meaning)."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for name in input_names:
        if name == "input_ids":
            feeds[name] = rng.integers(1000, 1000 + vocab, size=(batch, seq), dtype=np.int64)
        elif name == "attention_mask":
            feeds[name] = np.ones((batch, seq), dtype=np.int64)
        else:
            feeds[name] = np.zeros((batch, seq), dtype=np.int64)
    return feeds
