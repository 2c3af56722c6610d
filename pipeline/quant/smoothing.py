"""SmoothQuant-style scale migration before Q/DQ (Xiao et al., "SmoothQuant", 2023).

A few channels of a LayerNorm output carry most of its range, so one per-tensor INT8 scale
spends its steps on them. Per input channel k of the MatMuls that read the LayerNorm,
s_k = max|X_k|^α / max|W_k|^(1-α); the activation is divided by s (folded into the
LayerNorm's gamma and beta) and the weight rows are multiplied by it. The FP32 function is
unchanged; the outliers move from the activation, which shares one INT8 scale across its
channels, into the weights, whose ranges are narrow and have a scale per output channel.

In a post-LN encoder the LayerNorm output also feeds the residual Add (and Shape ops), which
must keep the unscaled values: the MatMuls then read a copy of the LayerNorm with the
scaled gamma/beta, so nothing is inserted into the graph but that second LayerNorm.
MatMuls whose input comes from anything else (the attention output, GELU) have no LayerNorm
to fold the scale into: they get a Mul by 1/s in front instead (a pointwise op that TensorRT
fuses with the one before it), where that input is read by them alone. These sites matter
most: GELU outputs, the FFN down projections' inputs, have the widest ranges of the model
(docs/decisions/007-tensorrt-qdq-placement.md).

ONNX Runtime's own `SmoothQuant` option is not used: it imports Intel Neural Compressor's
ONNX adaptor (`neural_compressor.adaptor.ox_utils`, a dependency of its own) and runs a
calibration pass of its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.quant.onnx_eval import encode, ort_session

if TYPE_CHECKING:
    import numpy as np
    import onnx

SUFFIX = "_smoothed"


@dataclass
class Site:
    """A LayerNorm and the MatMuls reading its output with a 2-D constant weight."""

    layernorm: onnx.NodeProto
    matmuls: list[onnx.NodeProto]


def smoothing_sites(model: onnx.ModelProto) -> list[Site]:
    """LayerNorms with constant gamma and beta that feed MatMuls with constant [K, N]
    weights of their own (a weight shared with another node would be scaled twice)."""
    inits = {t.name: t for t in model.graph.initializer}
    readers = _readers(model)
    uses = {tensor: len(nodes) for tensor, nodes in readers.items()}
    sites = []
    for node in model.graph.node:
        if node.op_type != "LayerNormalization" or len(node.input) < 3:
            continue
        if not all(t in inits for t in node.input[1:3]):
            continue
        matmuls = [
            m
            for m in readers.get(node.output[0], [])
            if m.op_type == "MatMul"
            and m.input[0] == node.output[0]
            and m.input[1] in inits
            and len(inits[m.input[1]].dims) == 2
            and uses[m.input[1]] == 1
        ]
        if matmuls:
            sites.append(Site(node, matmuls))
    return sites


def _readers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """The nodes reading each tensor (a tensor read twice by one node is listed twice)."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    return readers


def input_sites(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMuls with a constant [K, N] weight of their own whose input is no LayerNorm's
    output and is read by nothing else (a Mul in front changes no other reader)."""
    inits = {t.name: t for t in model.graph.initializer}
    produced = {o: n for n in model.graph.node for o in n.output}
    uses = {tensor: len(nodes) for tensor, nodes in _readers(model).items()}
    return [
        m
        for m in model.graph.node
        if m.op_type == "MatMul"
        and m.input[1] in inits
        and len(inits[m.input[1]].dims) == 2
        and uses[m.input[1]] == 1
        and uses[m.input[0]] == 1
        and m.input[0] in produced
        and produced[m.input[0]].op_type != "LayerNormalization"
    ]


def scale_input(
    model: onnx.ModelProto, matmul: onnx.NodeProto, weight: onnx.TensorProto, scales: np.ndarray
):
    """A Mul of the MatMul's input by 1/`scales`, the weight rows multiplied by `scales`, the
    MatMul pointed at the Mul's output; returns the Mul (not yet in the graph)."""
    from onnx import helper, numpy_helper

    scaled = numpy_helper.to_array(weight) * scales[:, None]
    weight.CopyFrom(numpy_helper.from_array(scaled, weight.name))
    output = matmul.input[0] + SUFFIX
    model.graph.initializer.append(numpy_helper.from_array(1.0 / scales, f"{output}/scale"))
    mul = helper.make_node(
        "Mul", [matmul.input[0], f"{output}/scale"], [output], matmul.name + SUFFIX
    )
    matmul.input[0] = output
    return mul


def channel_maxima(
    model: Path, tokenizer, texts: Sequence[str], max_length: int, tensors: Sequence[str]
) -> dict[str, np.ndarray]:
    """max |x| per channel (last axis) of `tensors` over `texts`, one unpadded text per run,
    as calibration feeds them."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    graph = onnx.load(str(model))
    known = {o.name for o in graph.graph.output}
    graph.graph.output.extend(
        helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in tensors if t not in known
    )
    with tempfile.TemporaryDirectory(prefix="edgepack-smooth-") as tmp:
        onnx.save(graph, str(Path(tmp) / "probed.onnx"))
        session = ort_session(Path(tmp) / "probed.onnx")
    names = [i.name for i in session.get_inputs()]
    maxima: dict[str, np.ndarray] = {}
    for text in texts:
        values = session.run(list(tensors), encode(tokenizer, [text], max_length, names))
        for name, value in zip(tensors, values, strict=True):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], peak) if name in maxima else peak
    return maxima


def migration_scales(act_max: np.ndarray, weights: Sequence[np.ndarray], alpha: float):
    """s = max|X|^α / max|W|^(1-α) per input channel, W's max over every MatMul's row."""
    import numpy as np

    w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
    scales = np.maximum(act_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1.0 - alpha)
    return np.maximum(scales, 1e-5).astype(np.float32)


def scaled_copy(model: onnx.ModelProto, site: Site, scales: np.ndarray) -> onnx.NodeProto:
    """A copy of the site's LayerNorm with gamma and beta divided by `scales`; multiplies the
    weight rows by `scales` and points the MatMuls at the copy (not yet in the graph)."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    ln = site.layernorm
    gamma, beta = (numpy_helper.to_array(inits[t]) for t in ln.input[1:3])
    output = ln.output[0] + SUFFIX  # gamma/beta may be shared: name them after the copy
    params = [f"{output}/gamma", f"{output}/beta"]
    copy = helper.make_node(
        "LayerNormalization", [ln.input[0], *params], [output], ln.name + SUFFIX, domain=ln.domain
    )
    copy.attribute.extend(ln.attribute)
    model.graph.initializer.extend(
        numpy_helper.from_array(value / scales, name)
        for value, name in zip((gamma, beta), params, strict=True)
    )
    for matmul in site.matmuls:
        weight = inits[matmul.input[1]]
        scaled = numpy_helper.to_array(weight) * scales[:, None]
        weight.CopyFrom(numpy_helper.from_array(scaled, weight.name))
        matmul.input[0] = copy.output[0]
    return copy


def insert_copies(model: onnx.ModelProto, copies: dict[str, onnx.NodeProto]) -> None:
    """Each copy right after its LayerNorm (keyed by output); a LayerNorm nothing reads any
    more goes, with its gamma and beta unless something else reads them."""
    graph = model.graph
    read = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
    nodes, dropped = [], set()
    for node in graph.node:
        copy = copies.get(node.output[0]) if node.output else None
        if copy is None or node.output[0] in read:
            nodes.append(node)
        else:
            dropped |= set(node.input[1:3])
        if copy is not None:
            nodes.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
    read = {t for n in nodes for t in n.input}
    kept = [t for t in graph.initializer if t.name not in dropped or t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def smooth(
    src: Path,
    dst: Path,
    tokenizer,
    texts: Sequence[str],
    max_length: int,
    alpha: float,
    inputs: bool = True,
) -> int:
    """Migrate activation range into the weights at every site, with α = `alpha` and the
    activation maxima of `texts`, at the LayerNorm sites and (`inputs`) the `input_sites`;
    returns how many sites were smoothed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    sites = smoothing_sites(model)
    matmuls = input_sites(model) if inputs else []
    outputs = [s.layernorm.output[0] for s in sites]
    maxima = channel_maxima(
        src, tokenizer, texts, max_length, outputs + [m.input[0] for m in matmuls]
    )
    inits = {t.name: t for t in model.graph.initializer}
    copies = {}
    for site, output in zip(sites, outputs, strict=True):
        weights = [numpy_helper.to_array(inits[m.input[1]]) for m in site.matmuls]
        copies[output] = scaled_copy(model, site, migration_scales(maxima[output], weights, alpha))
    muls = {}
    for m in matmuls:
        weight = inits[m.input[1]]
        scales = migration_scales(maxima[m.input[0]], [numpy_helper.to_array(weight)], alpha)
        muls[m.output[0]] = scale_input(model, m, weight, scales)
    insert_copies(model, copies)
    if muls:
        nodes = [n for node in model.graph.node for n in (muls.get(node.output[0]), node) if n]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    onnx.save(model, str(dst))
    return len(sites) + len(matmuls)
