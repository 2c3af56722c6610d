"""TensorRT compatibility lint for an explicit-INT8 (Q/DQ) ONNX model.

What TensorRT's ONNX parser accepts, per TensorRT line, comes from onnx-tensorrt's
operator support matrix (docs/operators.md of each release branch):
- release/8.5-GA: "TensorRT 8.5 supports operators up to Opset 17"; Q/DQ are INT8 only,
  "`x_zero_point` must be zero" / "`y_zero_point` must be 0"; the ops marked "N" are in
  UNSUPPORTED["8.5"] below (LayerNormalization among them: Jetson Xavier cannot parse it).
- release/10.x (table of 10.15; each target's onnx_max_opset caps the opset further):
  the ops marked "N" are in UNSUPPORTED["10"].
Ops outside the default ONNX domain (com.microsoft contrib ops from ORT fusions) have no
parser support without plugins, so any of them is a violation.

Weights come in either form TensorRT's explicit quantization accepts ("Quantized Weights"
in its developer guide): float weights followed by a QuantizeLinear (TensorRT quantizes
them at build time; NVIDIA ModelOpt writes this form), or pre-quantized INT8 initializers
behind a DequantizeLinear (onnxruntime's form). Per-channel scales are allowed on weights
only, along the output channels of the GEMM/Conv that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from router.errors import UserError

if TYPE_CHECKING:
    import onnx

    from pipeline.target import Target

_COMMON_UNSUPPORTED = frozenset(
    {
        "Bernoulli", "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "DFT",
        "Det", "DynamicQuantizeLinear", "MatMulInteger", "MaxRoiPool", "MaxUnpool",
        "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional",
        "OptionalGetElement", "OptionalHasElement", "QLinearConv", "QLinearMatMul",
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
        "SequenceInsert", "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss",
        "SplitToSequence", "StringNormalizer", "TfIdfVectorizer", "Unique",
    }
)  # fmt: skip

UNSUPPORTED: dict[str, frozenset[str]] = {
    "8.5": _COMMON_UNSUPPORTED
    | {"BlackmanWindow", "HammingWindow", "HannWindow", "Hardmax", "IsInf"}
    | {"LayerNormalization", "STFT"},
    "10": _COMMON_UNSUPPORTED
    | {"AffineGrid", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "CenterCropPad"}
    | {"Col2Im", "ImageDecoder", "RegexFullMatch", "StringConcat", "StringSplit"},
}
"""Per TensorRT line ("major.minor", or "major" for a whole major line): ops its parser rejects."""

DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Violation:
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.node}: {self.message}"


def unsupported_ops(line: str) -> frozenset[str]:
    """The op table for a TensorRT line; an unknown line is a user error, never a guess."""
    major = line.split(".")[0]
    for key in (line, major):
        if key in UNSUPPORTED:
            return UNSUPPORTED[key]
    raise UserError(
        f"lint: no TensorRT operator table for line {line!r} (known: {', '.join(UNSUPPORTED)})"
    )


def model_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 1)


def lint_model(model: onnx.ModelProto, target: Target) -> list[Violation]:
    """Every reason TensorRT for `target` would reject or mis-handle this Q/DQ model."""
    found: list[Violation] = []
    opset = model_opset(model)
    if opset > target.onnx_max_opset:
        found.append(
            Violation("model", f"opset {opset} > {target.name}'s maximum {target.onnx_max_opset}")
        )
    inits = {t.name: t for t in model.graph.initializer}
    consts = _constant_nodes(model)
    consumers = _consumers(model)
    producer = {out: n for n in model.graph.node for out in n.output}
    banned = unsupported_ops(target.tensorrt.line) if target.tensorrt else frozenset()
    line = target.tensorrt.line if target.tensorrt else None
    for node in model.graph.node:
        name = node.name or node.output[0]
        if node.domain not in DEFAULT_DOMAINS:
            found.append(Violation(name, f"{node.domain}::{node.op_type} is not an ONNX op"))
        elif node.op_type in banned:
            found.append(Violation(name, f"{node.op_type} is not parsed by TensorRT {line}"))
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            found += _check_qdq(node, name, inits, consts, consumers, producer)
    return found


def _constant_nodes(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {
        n.output[0]: a.t
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    }


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    found: dict[str, list] = {}
    for node in model.graph.node:
        for tensor in node.input:
            found.setdefault(tensor, []).append(node)
    return found


def _check_qdq(node, name, inits, consts, consumers, producer) -> list[Violation]:
    """INT8, zero point present and 0, constant scale, per-channel axis = weight's out axis."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    found = []
    scale = inits.get(node.input[1]) or consts.get(node.input[1])
    if scale is None:
        found.append(Violation(name, "scale is not a constant (TensorRT needs a build-time scale)"))
    zp_name = node.input[2] if len(node.input) > 2 else ""
    zp = inits.get(zp_name) or consts.get(zp_name)
    if zp is None:
        found.append(
            Violation(name, "no constant zero point: defaults to UINT8, TensorRT needs INT8")
        )
    else:
        if zp.data_type != TensorProto.INT8:
            kind = TensorProto.DataType.Name(zp.data_type)
            found.append(Violation(name, f"zero point type {kind}, TensorRT needs INT8"))
        if np.any(numpy_helper.to_array(zp) != 0):
            found.append(
                Violation(name, "zero point is not 0 (asymmetric; TensorRT needs symmetric)")
            )
    stored = inits.get(node.input[0])
    stored_type = TensorProto.INT8 if stored is None else stored.data_type
    if node.op_type == "DequantizeLinear" and stored_type != TensorProto.INT8:
        kind = TensorProto.DataType.Name(stored_type)
        found.append(Violation(name, f"pre-quantized weight is {kind}, TensorRT needs INT8"))
    if scale is not None and int(np.prod(scale.dims)) > 1:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        found += _check_axis(node, name, attrs.get("axis", 1), inits, consumers, producer)
    return found


def _weight_behind(node, inits, producer):
    """The weight initializer a Q/DQ node quantizes: float weight → Q (→ DQ), or INT8 → DQ."""
    if node.input[0] in inits:
        return inits[node.input[0]]
    source = producer.get(node.input[0])
    if node.op_type == "DequantizeLinear" and getattr(source, "op_type", "") == "QuantizeLinear":
        return inits.get(source.input[0])
    return None


def _check_axis(node, name, axis, inits, consumers, producer) -> list[Violation]:
    """Per-channel scales must run along the weight's output channels."""
    weight = _weight_behind(node, inits, producer)
    if weight is None:
        return [Violation(name, "per-channel scale on an activation (TensorRT: weights only)")]
    rank = len(weight.dims)
    axis = axis + rank if axis < 0 else axis
    dequantized = [node.output[0]]
    if node.op_type == "QuantizeLinear":
        dequantized = [dq.output[0] for dq in consumers.get(node.output[0], [])]
    for tensor in dequantized:
        for user in consumers.get(tensor, []):
            expected = _expected_axis(user, tensor, rank)
            if expected is not None and axis != expected:
                return [
                    Violation(
                        name,
                        f"per-channel axis {axis} but {user.op_type} {user.name} needs axis "
                        f"{expected} (weight shape {list(weight.dims)})",
                    )
                ]
    return []


def _expected_axis(user, tensor: str, rank: int) -> int | None:
    from onnx import helper

    if user.op_type == "MatMul" and list(user.input).index(tensor) == 1:
        return rank - 1  # B is [K, N]: one scale per output column
    if user.op_type == "Gemm" and list(user.input).index(tensor) == 1:
        attrs = {a.name: helper.get_attribute_value(a) for a in user.attribute}
        return 0 if attrs.get("transB", 0) else 1
    if user.op_type in ("Conv", "ConvTranspose") and list(user.input).index(tensor) == 1:
        return 0 if user.op_type == "Conv" else 1
    return None


def lint_file(path: Path, target: Target) -> list[Violation]:
    """Lint a model file; an unreadable file is a user error naming it."""
    import onnx

    if not Path(path).is_file():
        raise UserError(f"{path}: file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError/ValueError variants
        raise UserError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    return lint_model(model, target)
