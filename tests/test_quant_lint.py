"""The TensorRT lint catches what TensorRT would reject, naming the node; `edgepack lint`
prints one line per violation and exits 1, or exits 0 on a clean model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.quant.lint import lint_model, unsupported_ops
from pipeline.target import load_target
from router.errors import UserError

WEIGHT_FORMS = {"int8": np.int8, "uint8": np.uint8, "float": np.float32}
"""int8/uint8: pre-quantized initializer → DQ; float: float initializer → Q → DQ."""


def qdq_matmul(
    opset: int = 17,
    zero_point: int = 0,
    zp_type=np.int8,
    axis: int = 1,
    extra_op: str = "",
    weights: str = "int8",
    x_scale: np.ndarray | None = None,
) -> onnx.ModelProto:
    """x → Q → DQ → MatMul(DQ(W), per-channel) → y: the Q/DQ pattern of a linear layer."""
    rng = np.random.default_rng(0)
    weight = rng.integers(0 if weights == "uint8" else -127, 127, size=(8, 4))
    weight = weight.astype(WEIGHT_FORMS[weights]) * (0.01 if weights == "float" else 1)
    w_scale = np.full(weight.shape[axis], 0.01, np.float32)
    x_scale = np.array(0.05, np.float32) if x_scale is None else x_scale
    inits = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(w_scale, "W_scale"),
        numpy_helper.from_array(
            np.zeros(weight.shape[axis], WEIGHT_FORMS[weights] if weights == "uint8" else np.int8),
            "W_zp",
        ),
        numpy_helper.from_array(x_scale, "x_scale"),
        numpy_helper.from_array(np.full(x_scale.shape, zero_point, zp_type), "x_zp"),
    ]
    x_axis = {"axis": 1} if x_scale.size > 1 else {}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="x_Q", **x_axis),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"], name="x_DQ",
                         **x_axis),
        helper.make_node("DequantizeLinear", ["Wq" if weights == "float" else "W", "W_scale",
                                              "W_zp"], ["Wd"], name="W_DQ", axis=axis),
        helper.make_node("MatMul", ["xd", "Wd"], ["y"], name="fc/MatMul"),
    ]  # fmt: skip
    if weights == "float":  # TensorRT quantizes the float weight itself at build time
        nodes.insert(
            0,
            helper.make_node(
                "QuantizeLinear", ["W", "W_scale", "W_zp"], ["Wq"], name="W_Q", axis=axis
            ),
        )
    out = "y"
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["z"], name=f"head/{extra_op}"))
        out = "z"
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


XAVIER, ORIN, A100, CPU = (load_target(n) for n in ("jetson-xavier", "jetson-orin", "a100", "cpu"))


def messages(model, target) -> list[str]:
    return [str(v) for v in lint_model(model, target)]


@pytest.mark.parametrize("weights", ["int8", "float"])
def test_both_weight_forms_pass_every_target(weights):
    """Pre-quantized INT8 + DQ (onnxruntime) and float + Q + DQ (ModelOpt): TensorRT takes
    both, so the lint does."""
    for target in (XAVIER, ORIN, A100, CPU):
        assert messages(qdq_matmul(weights=weights), target) == []


def test_non_int8_pre_quantized_weight_is_rejected():
    found = messages(qdq_matmul(weights="uint8"), ORIN)
    assert any(m.startswith("W_DQ:") and "pre-quantized weight is UINT8" in m for m in found)


@pytest.mark.parametrize("weights", ["int8", "float"])
def test_per_channel_axis_is_checked_in_both_weight_forms(weights):
    found = messages(qdq_matmul(axis=0, weights=weights), ORIN)
    assert found and all("needs axis 1" in m for m in found)
    assert {m.split(":")[0] for m in found} == ({"W_DQ", "W_Q"} if weights == "float" else {"W_DQ"})


def test_per_channel_activation_scale_is_rejected():
    found = messages(qdq_matmul(x_scale=np.full(8, 0.05, np.float32)), ORIN)
    assert any(m.startswith("x_Q:") and "per-channel scale on an activation" in m for m in found)
    assert any(m.startswith("x_DQ:") and "per-channel scale on an activation" in m for m in found)


@pytest.mark.parametrize("weights", ["int8", "float"])
def test_planted_asymmetric_quantize_node_is_named(weights):
    found = messages(qdq_matmul(zero_point=3, weights=weights), XAVIER)
    assert any(m.startswith("x_Q:") and "zero point is not 0" in m for m in found)
    assert any(m.startswith("x_DQ:") for m in found)


def test_uint8_zero_point_is_rejected():
    found = messages(qdq_matmul(zero_point=128, zp_type=np.uint8), ORIN)
    assert any(m.startswith("x_Q:") and "UINT8" in m for m in found)


def test_opset_cap_depends_on_target():
    model = qdq_matmul(opset=18)
    assert any("opset 18 > jetson-xavier's maximum 17" in m for m in messages(model, XAVIER))
    assert messages(model, ORIN) == []  # Orin's TensorRT 10.3 profile allows 19


def test_per_channel_axis_must_follow_weight_layout():
    found = messages(qdq_matmul(axis=0), ORIN)
    assert found and found[0].startswith("W_DQ:") and "needs axis 1" in found[0]


def test_ops_the_tensorrt_line_cannot_parse():
    model = qdq_matmul(extra_op="IsInf")
    assert any(m.startswith("head/IsInf:") for m in messages(model, XAVIER))  # 8.5: N
    assert messages(model, ORIN) == []  # 10.x parses IsInf
    assert "LayerNormalization" in unsupported_ops("8.5")
    assert "LayerNormalization" not in unsupported_ops("10.3")


def test_contrib_ops_are_rejected():
    model = qdq_matmul()
    model.graph.node.append(
        helper.make_node("FastGelu", ["y"], ["g"], name="ort/FastGelu", domain="com.microsoft")
    )
    assert any(m.startswith("ort/FastGelu:") for m in messages(model, ORIN))


def test_unknown_tensorrt_line_is_a_user_error():
    with pytest.raises(UserError, match=r"no TensorRT operator table for line '7\.1'"):
        unsupported_ops("7.1")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = "from pipeline.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "lint", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_exit_codes_and_one_line_per_violation(tmp_path: Path):
    clean, bad = tmp_path / "clean.onnx", tmp_path / "bad.onnx"
    onnx.save(qdq_matmul(), str(clean))
    onnx.save(qdq_matmul(opset=18, zero_point=5), str(bad))
    ok = run_cli(str(clean), "--target", "jetson-xavier")
    assert ok.returncode == 0, ok.stderr
    assert "clean for jetson-xavier" in ok.stdout
    failed = run_cli(str(bad), "--target", "jetson-xavier")
    assert failed.returncode == 1
    lines = failed.stdout.strip().splitlines()
    assert len(lines) == 3  # opset, x_Q zero point, x_DQ zero point
    assert all(line.startswith(f"{bad}: ") for line in lines)
    assert "Traceback" not in failed.stderr
    missing = run_cli(str(tmp_path / "nope.onnx"), "--target", "jetson-xavier")
    assert missing.returncode == 2 and "file not found" in missing.stderr
