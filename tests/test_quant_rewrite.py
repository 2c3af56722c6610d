"""LayerNorm expansion for TensorRT 8.5 (Jetson Xavier): same numbers, no LayerNormalization."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.quant.onnx_eval import ort_session
from pipeline.quant.rewrite import decompose_layernorm


def layernorm_model(opset: int) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    scale = numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "bias")
    node = helper.make_node(
        "LayerNormalization", ["x", "scale", "bias"], ["y"], name="ln", axis=-1, epsilon=1e-6
    )
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 8])],
        [scale, bias],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [17, 18])
def test_expanded_layernorm_matches(tmp_path, opset):
    model = layernorm_model(opset)
    onnx.save(model, str(tmp_path / "ln.onnx"))
    assert decompose_layernorm(model) == 1
    onnx.checker.check_model(model)
    assert "LayerNormalization" not in {n.op_type for n in model.graph.node}
    onnx.save(model, str(tmp_path / "expanded.onnx"))
    x = np.random.default_rng(2).normal(size=(2, 3, 8)).astype(np.float32) * 5
    ref = ort_session(tmp_path / "ln.onnx").run(None, {"x": x})[0]
    got = ort_session(tmp_path / "expanded.onnx").run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4)
