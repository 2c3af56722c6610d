"""The TensorRT model: explicit INT8 with Q/DQ nodes (onnx/model.qdq.onnx).

TensorRT 10.1 deprecated implicit INT8 and 11 removed it, so TensorRT's INT8 comes from
Q/DQ nodes placed where it fuses them: the inputs of every MatMul/Gemm (weights
per-channel, activations per-tensor) and the residual Adds in front of LayerNorm.
LayerNorm, Softmax and GELU (Erf) stay float. Everything is symmetric INT8, zero point 0,
as the TensorRT parser requires. Quantization itself is onnxruntime's `quantize_static`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.quant.rewrite import decompose_layernorm

if TYPE_CHECKING:
    import onnx

OP_TYPES = ("MatMul", "Gemm", "Add")
"""What is calibrated and may get Q/DQ; which Add nodes do is narrowed by `qdq_nodes`."""


def preprocess(src: Path, dst: Path) -> Path:
    """ORT's quantization pre-processing: symbolic shape inference + basic optimizations."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), auto_merge=True)
    except Exception as exc:  # symbolic inference can give up on exotic graphs
        logging.getLogger(__name__).info("symbolic shape inference failed (%s); ONNX only", exc)
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst


def qdq_nodes(model: onnx.ModelProto) -> list[str]:
    """MatMul/Gemm nodes, plus residual Adds: two activations in, a LayerNorm out, and one
    input coming from a LayerNorm (the skip connection), so embedding sums and bias/mask
    Adds stay float.
    """
    consts = {t.name for t in model.graph.initializer}
    consts |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    producer = {out: n for n in model.graph.node for out in n.output}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for tensor in n.input:
            consumers.setdefault(tensor, []).append(n.op_type)
    names = []
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            names.append(node.name)
        elif node.op_type == "Add" and not any(i in consts for i in node.input):
            feeds_ln = "LayerNormalization" in consumers.get(node.output[0], [])
            from_ln = any(
                i in producer and producer[i].op_type == "LayerNormalization" for i in node.input
            )
            if feeds_ln and from_ln:
                names.append(node.name)
    return names


_BLOCK = re.compile(r"(layers?|blocks?|h)[./_](\d+)(?=[./_])")


def block_of(node_name: str) -> str:
    """The block a node belongs to (`layer.3`), or `head`/`embeddings`-like prefixes."""
    match = _BLOCK.search(node_name)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    parts = [p for p in node_name.split("/") if p]
    return parts[1] if len(parts) > 2 else (parts[0] if parts else "graph")


def group_blocks(nodes: Iterable[str]) -> dict[str, list[str]]:
    """Node names grouped by block, in graph order: the unit of sensitivity exclusion."""
    groups: dict[str, list[str]] = {}
    for name in nodes:
        groups.setdefault(block_of(name), []).append(name)
    return groups


def sensitivity_units(model_path: Path, nodes: Sequence[str]) -> dict[str, list[str]]:
    """Units the gate may keep in float: each block, plus cross-block kinds whose
    quantization error has a common cause (residual-stream outliers; attention MatMuls
    on softmax probabilities, which symmetric INT8 resolves to 1/127 only; FFN down
    projections, fed by GELU outputs with long tails).
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    units = group_blocks(nodes)
    residual = [n for n in nodes if by_name[n].op_type == "Add"]
    attention = [
        n
        for n in nodes
        if by_name[n].op_type == "MatMul" and not any(i in inits for i in by_name[n].input)
    ]
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    down = [  # FFN output projections (K > N): their GELU inputs have the widest ranges
        n
        for n in nodes
        if by_name[n].op_type == "MatMul"
        and len(shapes.get(by_name[n].input[1], [])) == 2
        and shapes[by_name[n].input[1]][0] > shapes[by_name[n].input[1]][1]
    ]
    kinds = (("residual-adds", residual), ("attention-matmuls", attention), ("ffn-down", down))
    for kind, members in kinds:
        if members:
            units[kind] = members
    return units


def prepare_for_tensorrt(pre: Path, dst: Path, expand_layernorm: bool) -> list[str]:
    """Pick Q/DQ nodes, expand LayerNorm if the TensorRT line lacks it; save to `dst`."""
    import onnx

    model = onnx.load(str(pre))
    nodes = qdq_nodes(model)  # before expansion: residual Adds are found by their LayerNorm
    if expand_layernorm:
        decompose_layernorm(model)
    onnx.save(model, str(dst))
    return nodes


def quantize_qdq(
    prepared: Path,
    dst: Path,
    calib_cache: Path,
    method,
    nodes: Sequence[str],
    exclude: Sequence[str] = (),
) -> Path:
    """quantize_static into symmetric per-channel INT8 Q/DQ from cached calibration ranges."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    excluded = set(exclude)
    quantize_static(
        str(prepared),
        str(dst),
        calibration_data_reader=None,
        calibration_cache_path=str(calib_cache),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(OP_TYPES),
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=[n for n in nodes if n not in excluded],
        nodes_to_exclude=list(excluded),
        calibrate_method=method,
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            "DedicatedQDQPair": False,
            "QuantizeBias": False,
            # residual Adds get Q/DQ on their inputs (TensorRT fuses those into the GEMM
            # epilogue); their sum feeds LayerNorm in float
            "OpTypesToExcludeOutputQuantization": [
                "Add"
            ],  # TensorRT has no INT32 DequantizeLinear; biases stay float
        },
    )
    return dst
