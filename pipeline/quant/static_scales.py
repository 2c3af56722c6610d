"""Fixed activation scales for a dynamically quantized graph.

`quantize_dynamic` gives the BERT-fused graph ONNX Runtime's fastest integer kernels
(QAttention, MatMulInteger folded into MatMulIntegerToFloat, weights per channel), but
each `DynamicQuantizeLinear` computes its scale from the whole batch tensor, padding
included, so a prompt's score depends on its neighbours. Replacing each one by a
`QuantizeLinear` whose scale and zero point come from calibration keeps those kernels and
computes every row on its own: batch-invariant by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

UINT8_MAX = 255


def uint8_params(low: float, high: float) -> tuple[float, int]:
    """Asymmetric uint8 (scale, zero point) for a calibrated range, as DynamicQuantizeLinear
    computes them at run time: the range is widened to hold 0, which stays exact."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / UINT8_MAX
    if scale == 0.0:  # an all-zero tensor: any scale represents it
        return 1.0, 0
    return scale, min(UINT8_MAX, max(0, round(-low / scale)))


def fix_scales(src: Path, dst: Path, ranges: Mapping[str, tuple[float, float]]) -> Path:
    """Write `src` to `dst` with every DynamicQuantizeLinear replaced by a calibrated
    QuantizeLinear. Raises ValueError naming the inputs with no range: a dynamic scale
    left behind would make the model batch-dependent again."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    dynamic = [n for n in graph.node if n.op_type == "DynamicQuantizeLinear"]
    missing = sorted({n.input[0] for n in dynamic} - ranges.keys())
    if missing:
        raise ValueError(f"no calibrated range for {', '.join(missing)}")
    for node in dynamic:
        scale, zero_point = uint8_params(*ranges[node.input[0]])
        quantized, scale_name, zero_point_name = node.output
        graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, np.float32), scale_name),
            numpy_helper.from_array(np.array(zero_point, np.uint8), zero_point_name),
        ])  # fmt: skip
        fixed = helper.make_node(
            "QuantizeLinear", [node.input[0], scale_name, zero_point_name], [quantized],
            name=f"{node.name}/fixed",
        )  # fmt: skip
        node.CopyFrom(fixed)
    onnx.save(model, str(dst))
    return dst
