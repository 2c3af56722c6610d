"""Graph rewrites that make an exported model parseable by an older TensorRT line.

TensorRT 8.5 (Jetson Xavier, JetPack 5.1) cannot parse ONNX `LayerNormalization`
(onnx-tensorrt release/8.5 docs/operators.md: "LayerNormalization | N"), while
torch.onnx emits it from opset 17 on. We expand it into the primitive ops torch used
to emit for opset < 17, which TensorRT 8.5 parses and fuses back into its own
normalization kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def decompose_layernorm(model: onnx.ModelProto) -> int:
    """Replace every last-axis LayerNormalization in place; returns how many were replaced."""
    import numpy as np
    from onnx import helper, numpy_helper

    opset = _opset(model)
    graph = model.graph
    new_nodes, count = [], 0
    axes_name = "edgepack_ln_axes"
    for node in graph.node:
        if node.op_type != "LayerNormalization" or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("axis", -1) != -1 or any(node.output[1:]):
            raise ValueError(f"{node.name}: only last-axis LayerNormalization can be expanded")
        eps = float(attrs.get("epsilon", 1e-5))
        x, scale = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        p = f"{node.name or node.output[0]}/expanded"
        eps_name = f"{p}/eps"
        graph.initializer.append(numpy_helper.from_array(np.array(eps, np.float32), eps_name))

        def reduce_mean(src: str, dst: str, name: str) -> onnx.NodeProto:
            if opset >= 18:
                return helper.make_node("ReduceMean", [src, axes_name], [dst], name=name)
            return helper.make_node("ReduceMean", [src], [dst], name=name, axes=[-1])

        y = f"{p}/normalized" if bias is None else f"{p}/scaled"
        new_nodes += [
            reduce_mean(x, f"{p}/mean", f"{p}/ReduceMean"),
            helper.make_node("Sub", [x, f"{p}/mean"], [f"{p}/centered"], name=f"{p}/Sub"),
            helper.make_node(
                "Mul", [f"{p}/centered", f"{p}/centered"], [f"{p}/sq"], name=f"{p}/Square"
            ),
            reduce_mean(f"{p}/sq", f"{p}/var", f"{p}/ReduceMeanVar"),
            helper.make_node("Add", [f"{p}/var", eps_name], [f"{p}/var_eps"], name=f"{p}/AddEps"),
            helper.make_node("Sqrt", [f"{p}/var_eps"], [f"{p}/std"], name=f"{p}/Sqrt"),
            helper.make_node("Div", [f"{p}/centered", f"{p}/std"], [f"{p}/norm"], name=f"{p}/Div"),
            helper.make_node(
                "Mul",
                [f"{p}/norm", scale],
                [node.output[0] if bias is None else y],
                name=f"{p}/Scale",
            ),
        ]
        if bias is not None:
            new_nodes.append(helper.make_node("Add", [y, bias], [node.output[0]], name=f"{p}/Bias"))
        count += 1
    if count and opset >= 18:
        graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), axes_name))
    del graph.node[:]
    graph.node.extend(new_nodes)
    return count
