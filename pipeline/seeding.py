"""Reproducible training: a stage's outputs are cached by its inputs, so the same inputs
must train the same weights."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deterministic(seed: int, threads: int | None) -> Iterator[None]:
    """Seed every generator training draws from (Python's, NumPy's, torch's: LoRA's
    initialisation and dropout), fix the thread count (it changes float summation order),
    and run torch's deterministic algorithms inside the block, as they were after it."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
