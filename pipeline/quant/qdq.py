"""The TensorRT model: explicit INT8 with Q/DQ nodes (onnx/model.qdq.onnx).

TensorRT 10.1 deprecated implicit INT8 and 11 removed it, so TensorRT's INT8 comes from
Q/DQ nodes. Their placement follows the TensorRT developer guide's "Q/DQ layer-placement
recommendations" (and what NVIDIA's ModelOpt ONNX quantizer does):
- quantize all inputs of weighted operations (MatMul/Gemm/Conv): weights per-channel,
  activations per-tensor;
- do not quantize the outputs of weighted operations: no Q/DQ after a MatMul/Gemm (so
  never on the logits or on Q·Kᵀ before Softmax), nothing on a graph output;
- quantize the residual input of a skip connection: the residual Add in front of a
  LayerNorm gets Q/DQ on its skip input only, so TensorRT can fuse the Add into the GEMM
  that produces the other input.
The two attention MatMuls (Q·Kᵀ, P·V: activations on both sides) are quantized unless
`attention=False`: on the default model that costs no accuracy and keeps agreement with
FP32 higher (docs/decisions/007-tensorrt-qdq-placement.md). LayerNorm, Softmax and GELU
(Erf) stay float. Everything is symmetric INT8, zero point 0, as the TensorRT parser
requires. Quantization itself is onnxruntime's `quantize_static`.
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


def _constants(model: onnx.ModelProto) -> set[str]:
    consts = {t.name for t in model.graph.initializer}
    return consts | {n.output[0] for n in model.graph.node if n.op_type == "Constant"}


def is_attention_matmul(node: onnx.NodeProto, consts: set[str]) -> bool:
    """A MatMul of two activations (Q·Kᵀ or P·V), as opposed to a linear layer's."""
    return node.op_type == "MatMul" and not any(i in consts for i in node.input)


def qdq_nodes(model: onnx.ModelProto, attention: bool = True) -> list[str]:
    """MatMul/Gemm nodes (attention MatMuls only if `attention`), plus residual Adds: two
    activations in, a LayerNorm out, and one input coming from a LayerNorm (the skip
    connection), so embedding sums and bias/mask Adds stay float.
    """
    consts = _constants(model)
    producer = {out: n for n in model.graph.node for out in n.output}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for tensor in n.input:
            consumers.setdefault(tensor, []).append(n.op_type)
    names = []
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            if attention or not is_attention_matmul(node, consts):
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
    consts = _constants(model)
    by_name = {n.name: n for n in model.graph.node}
    units = group_blocks(nodes)
    residual = [n for n in nodes if by_name[n].op_type == "Add"]
    attention = [n for n in nodes if is_attention_matmul(by_name[n], consts)]
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


def prepare_for_tensorrt(
    pre: Path, dst: Path, expand_layernorm: bool, attention: bool = True
) -> list[str]:
    """Pick Q/DQ nodes, expand LayerNorm if the TensorRT line lacks it; save to `dst`."""
    import onnx

    model = onnx.load(str(pre))
    nodes = qdq_nodes(model, attention)  # before expansion: residual Adds need LayerNorm
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
    import onnx
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
            "QuantizeBias": False,  # TensorRT has no INT32 DequantizeLinear
            "OpTypesToExcludeOutputQuantization": list(OP_TYPES),  # inputs only
        },
    )
    model = onnx.load(str(dst))
    unquantize_gemm_side_of_residuals(model)
    drop_unused_opsets(model)
    onnx.save(model, str(dst))
    return dst


def unquantize_gemm_side_of_residuals(model: onnx.ModelProto) -> int:
    """Remove the Q/DQ that quantize_static put on the GEMM side of each residual Add (the
    GEMM's output, after its bias), keeping the skip input's: TensorRT fuses the Add into
    the GEMM epilogue, which reads the GEMM's accumulator, not an INT8 copy of it.
    """
    consts = _constants(model)
    producer = {out: n for n in model.graph.node for out in n.output}
    users: dict[str, int] = {}
    for n in model.graph.node:
        for tensor in n.input:
            users[tensor] = users.get(tensor, 0) + 1

    def from_gemm(tensor: str) -> bool:
        node = producer.get(tensor)
        if node is None:
            return False
        if node.op_type in ("MatMul", "Gemm"):
            return True
        return (
            node.op_type == "Add"
            and any(i in consts for i in node.input)
            and any(i in producer and producer[i].op_type in ("MatMul", "Gemm") for i in node.input)
        )

    dropped: set[str] = set()
    count = 0
    for node in model.graph.node:
        if node.op_type != "Add":
            continue
        for k, tensor in enumerate(node.input):
            dq = producer.get(tensor)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear" or not from_gemm(q.input[0]):
                continue
            node.input[k] = q.input[0]
            count += 1
            if users[tensor] == 1 and users[dq.input[0]] == 1:
                dropped |= {dq.name, q.name}
    kept = [n for n in model.graph.node if n.name not in dropped]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return count


def drop_unused_opsets(model: onnx.ModelProto) -> None:
    """Declare only the opset domains some node uses (the default domain always)."""
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def float_blocks(model: onnx.ModelProto) -> list[str]:
    """Encoder blocks (`layer.N`) none of whose linear layers read an INT8 (DQ) input: the
    layers a TensorRT engine built from this model runs in FP16/FP32.
    """
    consts = _constants(model)
    producer = {out: n for n in model.graph.node for out in n.output}

    def weight(tensor: str) -> bool:  # an initializer, maybe behind DQ or Q → DQ
        while tensor not in consts and tensor in producer:
            node = producer[tensor]
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                return False
            tensor = node.input[0]
        return tensor in consts

    quantized: dict[str, bool] = {}
    for node in model.graph.node:
        block = block_of(node.name)
        if node.op_type not in ("MatMul", "Gemm") or not block.startswith("layer"):
            continue
        if not weight(node.input[1]):  # attention MatMuls
            continue
        fed = producer.get(node.input[0])
        int8_input = fed is not None and fed.op_type == "DequantizeLinear"
        quantized[block] = quantized.get(block, False) or int8_input
    return [block for block, q in quantized.items() if not q]
